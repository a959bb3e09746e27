"""Helpers for tests that run device code under the real MicroPython unix port.

- run_mpy(): run a MicroPython snippet with device/ (or a compiled copy) on its module path
  and a given heap size; returns the completed process.
- call_mpy(): run a snippet that sets `result`, get back ("ok", result) or
  ("err", exception type name, message), decoded from JSON the snippet prints.
- compile_device(): the device package compiled to .mpy with mpy-cross, in a folder.
- CannedServer: a threaded TCP server on 127.0.0.1 (port 0) answering each request target
  with a canned HTTP response (status, headers, body, chunked, cut-off or raw bytes) and
  recording the requests it got.
- closed_port(): a loopback port nothing listens on.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
from dataclasses import dataclass, field
from pathlib import Path

from tools import devicepkg

ROOT = Path(__file__).resolve().parents[1]
DEVICE = ROOT / "device"
BIN = Path(sys.executable).parent
MICROPYTHON = str(BIN / "micropython")

_RESULT = "@@RESULT@@"

_PROLOGUE = """\
import json
def _emit(x):
    print("@@RESULT@@" + json.dumps(x))
"""

_WRAP = """\
try:
{body}
    _emit(["ok", result])
except Exception as e:
    _emit(["err", type(e).__name__, str(e.args[0]) if e.args else ""])
"""


def run_mpy(
    code: str,
    heap: str = "40K",
    path: Path | str | None = None,
    timeout: float = 30,
    args: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    """Run `code` (dedented) under micropython -X heapsize=`heap` with `path` (default
    device/) first on MICROPYPATH. Returns the CompletedProcess (text stdout/stderr)."""
    mpath = str(path if path is not None else DEVICE)
    env = dict(os.environ, MICROPYPATH=mpath + ":.frozen")
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(textwrap.dedent(code))
        script = f.name
    try:
        return subprocess.run(
            [MICROPYTHON, "-X", f"heapsize={heap}", script, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    finally:
        os.unlink(script)


def call_mpy(code: str, heap: str = "40K", path: Path | str | None = None, timeout: float = 30):
    """Run `code`, which must set `result` (JSON-able), and return its outcome:
    ["ok", result] or ["err", "ValueError", "message"]. Fails loudly on a crash."""
    body = textwrap.indent(textwrap.dedent(code), "    ")
    p = run_mpy(_PROLOGUE + _WRAP.format(body=body), heap, path, timeout)
    for line in p.stdout.splitlines():
        if line.startswith(_RESULT):
            return json.loads(line[len(_RESULT) :])
    raise AssertionError(
        f"micropython gave no result (rc={p.returncode})\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    )


def compile_device(dest: Path) -> Path:
    """The device package compiled to .mpy as the deploy compiles it (tools.devicepkg), in
    dest/acupdate/; returns dest, to use as a module path."""
    devicepkg.build(dest, mpy=True)
    return dest


def closed_port() -> int:
    """A loopback TCP port with no listener (bound, then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@dataclass
class Canned:
    """One canned reply. `raw` (bytes) replaces everything when given. `cut` sends only
    that many body bytes (of the chunked coding when chunked), then closes. `chunks`
    (sizes) sends the body chunked. A
    Content-Length header is added unless `length` is False or the body is chunked."""

    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    chunks: list[int] | None = None
    cut: int | None = None
    raw: bytes | None = None
    length: bool = True
    reason: str = "OK"
    hang: bool = False  # read the request, then never answer (until the server stops)

    def encode(self) -> bytes:
        if self.raw is not None:
            return self.raw
        head = [f"HTTP/1.1 {self.status} {self.reason}"]
        head += [f"{k}: {v}" for k, v in self.headers]
        body = self.body if self.cut is None else self.body[: self.cut]
        if self.chunks is not None:
            head.append("Transfer-Encoding: chunked")
            parts, i = [], 0
            for n in self.chunks:
                parts.append(b"%x\r\n%s\r\n" % (n, self.body[i : i + n]))
                i += n
            if i < len(self.body):
                parts.append(b"%x\r\n%s\r\n" % (len(self.body) - i, self.body[i:]))
            parts.append(b"0\r\n\r\n")
            body = b"".join(parts)
            if self.cut is not None:
                body = body[: self.cut]
        elif self.length:
            head.append(f"Content-Length: {len(self.body)}")
        head.append("Connection: close")
        return ("\r\n".join(head) + "\r\n\r\n").encode() + body


@dataclass
class Request:
    line: str
    headers: list[tuple[str, str]]

    @property
    def target(self) -> str:
        return self.line.split(" ")[1]

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None


class LoopbackServer:
    """A threaded TCP server on 127.0.0.1 (port `.port`), one thread per connection given to
    the subclass's _handle(conn). Use as a context manager; it stops on exit."""

    def __init__(self, backlog: int = 64):
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(backlog)
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() below on Linux
        except OSError:
            pass
        self._sock.close()
        self._thread.join(timeout=5)
        assert not self._thread.is_alive(), f"{type(self).__name__} did not stop"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        raise NotImplementedError


class CannedServer(LoopbackServer):
    """Serves `routes` {request target: Canned} on 127.0.0.1; unknown targets get 404.
    Use as a context manager; `.port`, `.requests` (list of Request)."""

    def __init__(self, routes: dict[str, Canned] | None = None):
        super().__init__(backlog=16)
        self.routes = dict(routes or {})
        self.requests: list[Request] = []

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            data = b""
            while b"\r\n\r\n" not in data:
                try:
                    got = conn.recv(4096)
                except OSError:
                    return
                if not got:
                    return
                data += got
            lines = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
            headers = [tuple(x.strip() for x in h.split(":", 1)) for h in lines[1:]]
            req = Request(lines[0], headers)  # type: ignore[arg-type]
            with self._lock:
                self.requests.append(req)
            reply = self.routes.get(req.target, Canned(404, body=b"not found", reason="NF"))
            if reply.hang:
                self._stop.wait(30)
                return
            try:
                conn.sendall(reply.encode())
                conn.shutdown(socket.SHUT_WR)
            except OSError:
                return
