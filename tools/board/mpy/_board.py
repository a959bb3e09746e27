# The simulated board's firmware start-up and REPL, run by the real MicroPython
# unix port.  Like the ESP32's frozen _boot.py it mounts the board filesystem at /,
# then runs boot.py (and main.py in friendly mode) and serves the REPL on stdin/stdout:
# the friendly REPL, the raw REPL and raw-paste mode, as mpremote expects them.
# Exit codes tell the host what happened: 64/65 soft reset into friendly/raw mode.
import os
import sys

# The board's "ROM" modules: loaded before / becomes the board filesystem.
import _hw  # noqa: F401
import _simsock
import esp  # noqa: F401
import esp32  # noqa: F401
import machine  # noqa: F401
import network  # noqa: F401
import vfs

sys.modules["socket"] = _simsock  # sockets work only while the board has a network

MODE = os.getenv("ACUPDATE_SIM_MODE") or "friendly"
SCRIPT = os.getenv("ACUPDATE_SIM_SCRIPT")
BANNER = "MicroPython v1.29.0 on 2026-11-27; Generic ESP32 module (simulated) with ESP32\r\n"
WINDOW = 128

_src = None
if SCRIPT:
    with open(SCRIPT) as f:
        _src = f.read()

os.umount("/")
vfs.mount(vfs.VfsPosix(os.getenv("ACUPDATE_SIM_FS")), "/")
os.chdir("/")
sys.path[:] = ["", ".frozen", "/lib"]
if os.getenv("ACUPDATE_SIM_MKFS"):
    # The first boot of a freshly flashed board: the filesystem does not mount, so the
    # firmware's _boot.py runs inisetup.setup(): it makes the filesystem and MicroPython's
    # default /boot.py.
    print("Performing initial setup")
    with open("boot.py", "w") as f:
        f.write(
            "# This file is executed on every boot (including wake-boot from deepsleep)\n"
            "#import esp\n#esp.osdebug(None)\n#import webrepl\n#webrepl.start()\n"
        )
del _hw, esp, esp32, machine, network, vfs, _simsock


def _ballast():
    # The board firmware above lives in flash on a real ESP32, not in its heap: hold
    # back the extra heap the host granted for it, so that the application finds what
    # `micropython -X heapsize=<app heap>` starts with: that much free, in one piece.
    import gc

    want = int(os.getenv("ACUPDATE_SIM_APP_FREE") or 0)
    if not want:
        return None
    gc.collect()
    # First fit puts a want-sized tuple (one allocation, unlike a bytearray) at the
    # start of the big free region above the holes.
    top = id((None,) * (want // 8 - 4))
    gc.collect()
    chain = None
    while True:  # fill the holes below it with small cells
        cell = (chain,)
        if id(cell) >= top:
            break
        chain = cell
    rest = gc.mem_free() - want - 64
    return (chain, bytearray(rest) if rest > 0 else None)


_held = _ballast()
_g = {"__name__": "__main__"}
_out = sys.stdout
_in = sys.stdin.buffer


def _w(s):
    _out.write(s)


def _rd():
    b = _in.read(1)
    if not b:
        raise SystemExit(0)  # the host closed our stdin: power off
    return b[0]


def _run_file(name):
    try:
        os.stat(name)
    except OSError:
        return 0
    try:
        execfile(name, _g)
    except KeyboardInterrupt:
        _w("KeyboardInterrupt\n")
    except SystemExit:
        return 1
    except BaseException as e:
        sys.print_exception(e, _out)
    return 0


def _exec(src, mode):
    # Returns 1 when the code asked for a soft reset (SystemExit), as pyexec does.
    try:
        exec(compile(src, "<stdin>", mode), _g)
    except SystemExit:
        return 1
    except BaseException as e:
        sys.print_exception(e, _out)
    return 0


def _soft_reset(raw):
    # The host hears first that this life ends in a soft reset: a Ctrl-C that arrives from
    # now on (a tool sends "\r\x03" as soon as it reads "soft reboot") must not turn it
    # into a crash, whether its KeyboardInterrupt replaces the SystemExit on the way out or
    # the signal finds MicroPython's handler already gone.
    code = 65 if raw else 64
    while True:
        try:
            sys.stderr.write("\x00EXIT %d\n" % code)
            _w("MPY: soft reboot\n")
            raise SystemExit(code)
        except KeyboardInterrupt:
            pass


def _raw_repl():
    _w("raw REPL; CTRL-B to exit\r\n>")
    buf = bytearray()
    while True:
        try:
            c = _rd()
        except KeyboardInterrupt:
            buf = bytearray()
            continue
        if c == 1:
            _w("raw REPL; CTRL-B to exit\r\n>")
            buf = bytearray()
        elif c == 2:
            _w("\r\n")
            return
        elif c == 3:
            buf = bytearray()
        elif c == 5 and not buf:
            if _raw_paste():
                _soft_reset(True)
            _w(">")
        elif c == 4:
            if not buf:
                _w("\r\n")
                _soft_reset(True)
            _w("OK")
            if _exec_framed(bytes(buf)):
                _soft_reset(True)
            buf = bytearray()
            _w(">")
        else:
            buf.append(c)


def _exec_framed(src):
    try:
        code = compile(src, "<stdin>", "exec")
    except BaseException as e:
        _w("\x04")
        sys.print_exception(e, _out)
        _w("\x04")
        return 0
    reset = 0
    try:
        exec(code, _g)
        _w("\x04")
    except SystemExit:
        _w("\x04")
        reset = 1
    except BaseException as e:
        _w("\x04")
        sys.print_exception(e, _out)
    _w("\x04")
    return reset


def _raw_paste():
    # Raw-paste mode: flow-controlled upload, ends with Ctrl-D, then runs.
    if _rd() != ord("A") or _rd() != 1:
        _w("R\x00")
        return 0
    _w("R\x01")
    _out.buffer.write(bytes((WINDOW & 0xFF, WINDOW >> 8)))
    _w("\x01")
    buf = bytearray()
    got = 0
    while True:
        c = _rd()
        if c == 4:
            break
        buf.append(c)
        got += 1
        if got == WINDOW:
            got = 0
            _w("\x01")
    _w("\x04")
    return _exec_framed(bytes(buf))


def _friendly_repl():
    _w(BANNER + 'Type "help()" for more information.\r\n')
    while True:
        _w(">>> ")
        try:
            line = _readline()
        except KeyboardInterrupt:
            _w("\r\n")
            continue
        if line is None:
            continue
        if isinstance(line, int):
            if line == 1:
                return True  # Ctrl-A: raw REPL
            if line == 2:
                _w("\r\n" + BANNER + 'Type "help()" for more information.\r\n')
                continue
            if line == 4:
                _w("\r\n")
                _soft_reset(False)
            continue
        src = line
        if line.rstrip().endswith(":"):
            # A compound statement: more lines until an empty one.
            while src is not None:
                _w("... ")
                try:
                    more = _readline()
                except KeyboardInterrupt:
                    more = None
                if not isinstance(more, str):
                    src = None
                elif more == "":
                    src += "\n"
                    break
                else:
                    src += "\n" + more
        if src and src.strip():
            if _exec(src, "single"):
                _soft_reset(False)


def _readline():
    # A line with echo and backspace; control keys at an empty line come back as ints.
    buf = []
    while True:
        c = _rd()
        if c in (1, 2, 4) and not buf:
            return c
        if c == 3:
            _w("\r\n")
            return None
        if c == 13 or c == 10:
            _w("\r\n")
            return "".join(buf)
        if c in (8, 127):
            if buf:
                buf.pop()
                _w("\x08 \x08")
        elif c >= 32:
            ch = chr(c)
            buf.append(ch)
            _w(ch)


def _idle():
    # The script is done; a board would sit at its REPL now, where armed timers still fire
    # (a reset from one, say): wait for them.
    import time

    import machine

    while machine._armed:
        time.sleep_ms(10)


def main():
    sys.stderr.write("\x00READY\n")
    if not os.getenv("ACUPDATE_SIM_SKIP_BOOT") and _run_file("boot.py"):
        _soft_reset(MODE == "raw")
    if SCRIPT:
        if MODE == "script+main" and _run_file("main.py"):
            raise SystemExit(64)
        src = _src
        try:
            exec(src, _g)
        except SystemExit as e:
            raise SystemExit(e.args[0] if e.args and isinstance(e.args[0], int) else 0)
        except BaseException as e:
            sys.print_exception(e, _out)
            raise SystemExit(1)
        _idle()
        return
    raw = MODE == "raw"
    if not raw and _run_file("main.py"):
        _soft_reset(False)
    while True:
        try:
            if raw:
                _raw_repl()
                raw = False
            else:
                raw = _friendly_repl()
        except KeyboardInterrupt:
            pass


main()
