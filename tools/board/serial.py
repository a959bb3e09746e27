"""The board's serial port: a pseudo-terminal that speaks MicroPython's REPL.

mpremote (or a terminal) opens the pty's device; the host relays bytes between it and
the running MicroPython, cooks its output (\\n -> \\r\\n, as the board's UART does),
turns Ctrl-C into an interrupt, and carries the board through resets: after a hard
reset the bootloader runs and prints its log line; after a soft reset MicroPython
starts again on the same image.
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import threading
import tty

from .board import SOFT_RAW, Board, BoardError, Control

EXIT_MARK = re.compile(rb"\x00EXIT (\d+)\n")


class SerialBoard:
    def __init__(self, board: Board, *, heap="110K", echo=None):
        self.board = board
        self.heap = heap
        self.echo = echo  # a callable given everything the board prints, for logs
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.device = os.ttyname(self.slave)
        self.boots: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.error: str | None = None
        self._booted = threading.Condition()
        self.output = bytearray()  # everything the board printed
        self._pending = b""  # bytes sent during a soft reset, for the next life

    def start(self) -> SerialBoard:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        os.close(self.master)
        os.close(self.slave)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def wait_boots(self, n: int, timeout: float = 30) -> bool:
        """Wait until the board has booted n times in all (hard resets and power-on)."""
        with self._booted:
            return self._booted.wait_for(lambda: len(self.boots) >= n, timeout)

    # ------------------------------------------------------------------------
    def wait_output(self, text: bytes, timeout: float = 30) -> bool:
        """Wait until the board has printed `text` (since the serial port opened)."""
        with self._booted:
            return self._booted.wait_for(lambda: text in self.output, timeout)

    def wait_until(self, pred, timeout: float = 30) -> bool:
        """Wait until pred(everything the board printed so far) is true."""
        with self._booted:
            return self._booted.wait_for(lambda: pred(bytes(self.output)), timeout)

    def _emit(self, data: bytes) -> None:
        os.write(self.master, data)
        with self._booted:
            self.output += data
            self._booted.notify_all()
        if self.echo:
            self.echo(data)

    def _run(self) -> None:
        mode, hard = "friendly", True
        while not self._stop.is_set():
            if hard:
                self._pending = b""  # a hard reset empties the UART's receive buffer
                try:
                    boot = self.board.power_on()
                except BoardError as e:
                    self.error = str(e)
                    self._emit(f"\r\n{e}\r\n".encode())
                    return
                self._emit(f"\r\n{boot.log_line()}\r\n".encode())
                with self._booted:
                    self.boots.append(boot.log_line())
                    self._booted.notify_all()
            with Control(self.board) as ctl:
                proc = self.board.spawn(mode, ctl, heap=self.heap)
                ctl.proc = proc
                said = self._relay(proc)
                if self._stop.is_set():
                    os.killpg(proc.pid, signal.SIGKILL)
                rc = proc.wait()
            if said is not None and not self._stop.is_set():
                # The board had begun its soft reset: however the process ended (a late
                # Ctrl-C's KeyboardInterrupt or SIGINT), that is what happened.
                rc = said
            kind = self.board.note_exit(rc, ctl.wdt_fired)
            if kind == "soft":
                mode, hard = ("raw" if rc == SOFT_RAW else "friendly"), False
            else:
                if kind is None and not self._stop.is_set():
                    self._emit(f"\r\n[board crashed: exit {rc}; rebooting]\r\n".encode())
                mode, hard = "friendly", True

    def _relay(self, proc) -> int | None:
        """Relay bytes until the process ends; returns the exit code of the soft reset it
        announced (None if it did not). Ctrl-C becomes SIGINT only while the interpreter
        runs the board's code (after READY, before EXIT): on a board the UART turns it into a
        KeyboardInterrupt only then; before, it is a byte in the input buffer, and what
        arrives during a soft reset waits there for the next life."""
        sel = selectors.DefaultSelector()
        sel.register(self.master, selectors.EVENT_READ, "in")
        sel.register(proc.stdout, selectors.EVENT_READ, "out")
        sel.register(proc.stderr, selectors.EVENT_READ, "err")
        ready = False
        exiting: int | None = None
        last = b""
        open_pipes = 2
        if self._pending:
            self._to_board(proc, self._pending)
            self._pending = b""
        while open_pipes and not self._stop.is_set():
            for key, _ in sel.select(timeout=0.1):
                if key.data == "in":
                    data = os.read(self.master, 4096)
                    if exiting is not None:
                        self._pending += data
                    elif not ready:
                        self._to_board(proc, data)
                    else:
                        chunks = data.split(b"\x03")
                        for chunk in chunks[:-1]:
                            self._to_board(proc, chunk)
                            os.killpg(proc.pid, signal.SIGINT)
                        self._to_board(proc, chunks[-1])
                    continue
                data = os.read(key.fileobj.fileno(), 4096)
                if not data:
                    sel.unregister(key.fileobj)
                    open_pipes -= 1
                    continue
                if key.data == "err":
                    if b"\x00READY\n" in data:
                        ready = True
                        data = data.replace(b"\x00READY\n", b"")
                    found = EXIT_MARK.search(data)
                    if found:
                        exiting = int(found.group(1))
                        data = EXIT_MARK.sub(b"", data)
                    if not data:
                        continue
                cooked, last = cook(data, last)
                self._emit(cooked)
        sel.close()
        return exiting

    @staticmethod
    def _to_board(proc, data: bytes) -> None:
        if data:
            try:
                proc.stdin.write(data)
                proc.stdin.flush()
            except BrokenPipeError:
                pass


def cook(data: bytes, last: bytes) -> tuple[bytes, bytes]:
    """LF -> CR LF for bytes not already preceded by CR (the board's UART output)."""
    out = bytearray()
    prev = last
    for b in data:
        if b == 10 and prev != b"\r":
            out += b"\r"
        out.append(b)
        prev = bytes((b,))
    return bytes(out), prev
