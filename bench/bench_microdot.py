"""Measure Microdot, the ecosystem's MicroPython web framework, against the board's own web
server (issue 12: "for heap and for the hostile cases; choose with the figures").

Microdot is fetched at run time, pinned (MICRODOT below), from PyPI with pip into a temporary
folder: `micropython -m mip install microdot` needs micropython-lib's index or GitHub, which
this machine cannot reach. Its MicroPython modules (the package, auth, multipart) and the
app are compiled with mpy-cross -O3, as tools.devicepkg compiles the agent for the board.
Nothing of Microdot is kept in this repository.

The app (MD_APP below) is the board's upload page in Microdot: HTTP Basic auth on every
route; GET / a small HTML page; POST /update, a multipart form streamed with Microdot's own
FormDataIter (request.stream, never the whole body; Request.max_content_length = the slot
plus 4 KiB), the file's chunks fed to hashlib.md5 and written to a file (the stand-in for the
OTA slot write: the same on the board whichever server runs), the form's md5 checked, a
second upload meanwhile answered 409. It runs as `micropython -X heapsize=H`; the own
server runs on the simulated board with the same application heap H (host_tests' WebBoard,
with a user and password) and writes the upload into the board's OTA slot (flash model).

Prints: the free heap after each server's imports and after 1 s of idle serving; per server
and flow (GET / with auth; the upload of a 1.5 MiB image with auth) the least heap from which
every larger heap tried worked in every round (heaps tried largest first, down to two heaps
in a row where every round failed); then issue 12's hostile cases at --hostile-heap, in one
sequence on one server per kind, --hostile-rounds times, each followed by one authenticated
GET / (a refused connection retried for 10 s, as WebBoard does while the own server steps
aside for an update): what the client saw, the next GET /, and whether the server process
still runs. A server that died, or answered that GET / otherwise than 200, is started again
for the next case; the own board's reset after a successful upload (its design) is followed
by its server started again on the same board. Microdot also gets the 600-character file
name with FormDataIter.buffer_size 1024 (its default 256 cannot hold that part header).

    .venv/bin/python bench/bench_microdot.py [--heaps 96K,92K,...] [--rounds 2]
        [--hostile-heap 64K] [--hostile-rounds 2] [--buffer 256] [--only microdot|own]
"""

from __future__ import annotations

import argparse
import atexit
import hashlib
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from base64 import b64encode
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "host_tests")]

from conftest import install_agent  # noqa: E402
from test_web_device import WebBoard, big_image, form, free_port  # noqa: E402

from tools.board import Board  # noqa: E402
from tools.board.board import heap_bytes, micropython_command, plain_free  # noqa: E402
from tools.devicepkg import mpy_cross  # noqa: E402
from tools.image import build_app  # noqa: E402

MICRODOT = "2.7.0"  # PyPI release measured
MODULES = ("__init__", "microdot", "helpers", "auth", "multipart")
USER, PASSWORD = "admin", "s3cret"
TOKEN = b64encode(f"{USER}:{PASSWORD}".encode()).decode()
AUTH = {"Authorization": "Basic " + TOKEN}
BOUNDARY = "----WebKitFormBoundaryAcUpdate7MA4YWxk"
LIVE: list = []  # servers started: stopped at exit, whatever ends the run
HEAPS = ",".join(f"{k}K" for k in range(96, 23, -4))

# Prints the free heap after 1 s of serving with nobody connected: asyncio.run's coroutine
# gets a companion task. Both servers get it (the own server calls asyncio.run in web.serve;
# a server without asyncio prints nothing, and the figure reads "not measured").
PROBE = """
import asyncio

async def _probe():
    await asyncio.sleep(1)
    gc.collect()
    print("idle serving: free", gc.mem_free())
    print("probe done")

_run = asyncio.run

def _with_probe(main):
    async def both():
        asyncio.create_task(_probe())
        return await main
    return _run(both())

asyncio.run = _with_probe
"""

MD_APP = """
import gc
import os

gc.collect()
BASE = gc.mem_alloc()
import binascii
import hashlib

from microdot import Microdot, Request
from microdot.auth import BasicAuth
from microdot.multipart import FileUpload, FormDataIter

PORT = int(os.getenv("MD_PORT"))
OUT = os.getenv("MD_OUT")
FormDataIter.buffer_size = int(os.getenv("MD_BUFFER") or FormDataIter.buffer_size)
USER, PASSWORD = os.getenv("MD_USER"), os.getenv("MD_PASSWORD")
SLOT = 1572864  # ota_1's size: an image may fill it
Request.max_content_length = SLOT + 4096  # room for the form's boundaries and fields
PAGE = (
    "<!DOCTYPE html><html><head><title>acupdate</title></head><body>"
    "<h1>Update</h1><form method='post' action='/update' enctype='multipart/form-data'>"
    "<input type='file' name='firmware'> MD5 <input name='md5'>"
    "<input type='submit' value='Update'></form></body></html>"
)
app = Microdot()
auth = BasicAuth(realm="acupdate")
busy = None


@auth.authenticate
async def check(request, user, password):
    return user == USER and password == PASSWORD


@app.get("/")
@auth
async def index(request):
    return PAGE, 200, {"Content-Type": "text/html"}


class Sink:
    # the OTA slot write's stand-in: every chunk into the MD5 and a file
    def __init__(self, f):
        self.f = f
        self.md5 = hashlib.md5()
        self.n = 0

    def write(self, data):
        self.md5.update(data)
        self.f.write(data)
        self.n += len(data)


@app.post("/update")
@auth
async def update(request):
    global busy
    if busy is not None:
        return "Another update is running (upload of %s)" % busy, 409
    busy = "?"
    try:
        want = got = None
        async for name, value in FormDataIter(request):
            if isinstance(value, FileUpload):
                busy = value.filename
                with open(OUT, "wb") as f:
                    sink = Sink(f)
                    await value.save(sink)
                got = binascii.hexlify(sink.md5.digest()).decode()
                size = sink.n
            elif name == "md5":
                want = value.strip().lower()
        if got is None:
            return "No file in the form", 400
        if want and want != got:
            return "MD5 mismatch: got %s, the form gives %s" % (got, want), 400
        print("upload done", len(busy), size, got)
        return "Update successful: %d bytes, MD5 %s" % (size, got)
    finally:
        busy = None


gc.collect()
print("microdot after import: free %d (imports and app %d)" % (
    gc.mem_free(), gc.mem_alloc() - BASE))
print("serving on", PORT)
# PROBE
app.run(host="127.0.0.1", port=PORT)
print("app.run returned")
""".replace("# PROBE\n", PROBE)


# -- Microdot, fetched and compiled ---------------------------------------------------------


def fetch_microdot(tmp: Path) -> Path:
    """pip download the pinned wheel; its MicroPython modules and the app, compiled, in a
    lib folder for MICROPYPATH."""
    dl = tmp / "dl"
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", f"microdot=={MICRODOT}"]
        + ["-d", str(dl)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    (whl,) = dl.glob(f"microdot-{MICRODOT}-*.whl")
    lib = tmp / "mdlib"
    (lib / "microdot").mkdir(parents=True)
    src = tmp / "mdsrc"
    with zipfile.ZipFile(whl) as z:
        for m in MODULES:
            z.extract(f"microdot/{m}.py", src)
    (src / "mdapp.py").write_text(MD_APP)
    for m in MODULES:
        compile_mpy(src / "microdot" / f"{m}.py", lib / "microdot" / f"{m}.mpy")
    compile_mpy(src / "mdapp.py", lib / "mdapp.mpy")
    return lib


def compile_mpy(py: Path, out: Path) -> None:
    subprocess.run([mpy_cross(), "-O3", "-o", str(out), str(py)], check=True)


def listening(port: int, timeout: float) -> bool:
    """The port is in LISTEN state (read from /proc/net/tcp: a probe connection would be a
    client the server sees)."""
    want = f":{port:04X} 00000000:0000 0A"
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if want in Path("/proc/net/tcp").read_text():
            return True
        time.sleep(0.02)
    return False


class Microdot:
    name = "Microdot"

    def __init__(self, lib: Path, tmp: Path, heap: str, buffer: int | None = None):
        self.lib, self.tmp, self.heap, self.buffer = lib, tmp, heap, buffer
        self.start()

    def start(self) -> None:
        self.port = free_port()
        env = dict(os.environ, MICROPYPATH=f"{self.lib}:.frozen", MD_PORT=str(self.port))
        env.update(MD_OUT=str(self.tmp / "md-upload.bin"), MD_USER=USER, MD_PASSWORD=PASSWORD)
        if self.buffer:
            env["MD_BUFFER"] = str(self.buffer)
        cmd = [*micropython_command(), "-X", f"heapsize={heap_bytes(self.heap)}"]
        self.proc = subprocess.Popen(
            [*cmd, "-c", "import mdapp"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        LIVE.append(self)
        self.out = bytearray()
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        with self.cond:
            self.cond.wait_for(
                lambda: b"serving on" in self.out or self.proc.poll() is not None, 20
            )
        if b"serving on" not in self.out or not listening(self.port, 10):
            self.stop()
            raise AssertionError(f"Microdot did not start: {self.last_line()}")

    def ended(self) -> bool:
        return self.proc.poll() is not None

    def _read(self) -> None:
        assert self.proc.stdout
        for chunk in iter(lambda: self.proc.stdout.read1(4096), b""):  # type: ignore[union-attr]
            with self.cond:
                self.out += chunk
                self.cond.notify_all()

    @property
    def output(self) -> str:
        with self.cond:
            return self.out.decode(errors="replace")

    def last_line(self) -> str:
        lines = [ln for ln in self.output.splitlines() if ln.strip()]
        return lines[-1] if lines else "(no output)"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def settle(self, updated: bool) -> str:
        return ""

    def stop(self) -> str:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 9)
        self.proc.wait()
        self.reader.join(5)
        return self.output

    def restart(self) -> None:
        self.stop()
        self.start()


# -- the own server on the simulated board ---------------------------------------------------


def fresh_board(tmp: Path, name: str) -> Board:
    return Board.create(tmp / name, build_app(version="1.0.0", size=200_000, seed=1))


class Own:
    name = "own server"
    count = 0

    def __init__(self, tmp: Path, heap: str):
        self.tmp, self.heap = tmp, heap
        self.start(None)

    def start(self, board: Board | None) -> None:
        Own.count += 1
        board = board or fresh_board(self.tmp, f"own{Own.count}")
        self.wb = WebBoard(board, heap=self.heap, user=USER, password=PASSWORD)
        LIVE.append(self)
        self.port = self.wb.port

    @property
    def output(self) -> str:
        return self.wb.running.output

    def last_line(self) -> str:
        lines = [ln for ln in self.output.splitlines() if ln.strip()]
        return lines[-1] if lines else "(no output)"

    def alive(self) -> bool:
        return self.wb.running.proc.poll() is None

    def settle(self, updated: bool) -> str:
        """After a successful upload the board restarts into the new image (its design):
        wait for that reset and serve again on the same board."""
        if not updated:
            return ""
        try:
            res = self.wb.running.wait(30)
        except Exception as e:  # noqa: BLE001
            return f"; no reset after the update ({e})"
        self.start(self.wb.board)
        return f"; board reset ({res.reset}) into the new image, server started again"

    def stop(self) -> str:
        return self.wb.stop().output

    def restart(self) -> None:
        self.stop()
        self.start(None)


# -- a client's view -------------------------------------------------------------------------


def head(auth: str = "Basic " + TOKEN) -> str:
    return f"Host: board\r\nAuthorization: {auth}\r\n"


def what_came(s: socket.socket, timeout: float = 15) -> str:
    """Read the answer to its end: its status line and size, or what went wrong."""
    s.settimeout(timeout)
    got = b""
    try:
        while chunk := s.recv(65536):
            got += chunk
    except TimeoutError:
        return f"no answer in {timeout:.0f} s" if not got else f"{status(got)}, then stalled"
    except OSError as e:
        return f"{status(got)}, then {type(e).__name__}" if got else f"{type(e).__name__}"
    return status(got) if got else "closed, no answer"


def status(reply: bytes) -> str:
    line = reply.split(b"\r\n", 1)[0].decode(errors="replace")
    body = reply.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in reply else b""
    words = short(body.decode(errors="replace"))
    return f"{line.split(' ', 1)[-1]}" + (f" '{words}'" if words else "")


def raw(port: int, data: bytes, timeout: float = 15) -> str:
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except OSError as e:
        return f"connect: {type(e).__name__}"
    try:
        s.sendall(data)
        return what_came(s, timeout)
    except OSError as e:
        return f"{type(e).__name__} while sending"
    finally:
        s.close()


def get(port: int, headers=None, retry: float = 10, timeout: float = 30) -> str:
    """GET / with the password: '200', another status, or the error (refused retried)."""
    end = time.monotonic() + retry
    while True:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            c.request("GET", "/", headers=AUTH if headers is None else headers)
            r = c.getresponse()
            r.read()
            return str(r.status)
        except ConnectionRefusedError as e:
            if time.monotonic() > end:
                return type(e).__name__
        except (OSError, http.client.HTTPException) as e:
            return type(e).__name__
        finally:
            c.close()
        time.sleep(0.05)


def upload(port: int, image: bytes, name: str = "app-v2.bin", timeout: float = 60) -> str:
    """The browser's form (md5 field, then the file) with the password: status and words."""
    md5 = hashlib.md5(image).hexdigest().encode()
    body = form([("md5", None, md5), ("firmware", name, image)], BOUNDARY)
    hdrs = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}", **AUTH}
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("POST", "/update", body=body, headers=hdrs)
        r = c.getresponse()
        words = r.read().decode(errors="replace")
        ok = "Update successful" in words
        return f"{r.status}" + (" Update successful" if ok else f" '{short(words)}'")
    except (OSError, http.client.HTTPException) as e:
        return type(e).__name__
    finally:
        c.close()


def short(words: str, n: int = 60) -> str:
    text = re.sub(r"(?s)<(head|style|script)\b.*?</\1>", " ", words)
    text = re.sub(r"<[^>]*>", " ", text)
    return " ".join(text.split())[:n]


# -- issue 12's hostile cases ----------------------------------------------------------------


def c_connect_close(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.close()
    time.sleep(0.3)
    return "(nothing: closed at once)"


def c_garbage(port):
    return raw(port, b"GARBAGE\r\n\r\n")


def c_length_abc(port):
    return raw(port, f"POST /update HTTP/1.1\r\n{head()}Content-Length: abc\r\n\r\n".encode())


def c_long_header(port):
    line = "X-Long: " + "a" * (510 - len("X-Long: "))
    return raw(port, f"GET / HTTP/1.1\r\n{head()}{line}\r\n\r\n".encode())


def c_65_headers(port):
    more = "".join(f"X-H{i}: {i}\r\n" for i in range(63))  # + Host + Authorization = 65
    return raw(port, f"GET / HTTP/1.1\r\n{head()}{more}\r\n".encode())


def c_non_utf8(port):
    req = f"POST /update HTTP/1.1\r\n{head()}Content-Length: 0\r\n".encode()
    return raw(port, req + b"Content-Type: multipart/form-data; boundary=\xff\xfe\xc3\r\n\r\n")


def c_long_line(port):
    return raw(port, f"GET /{'a' * 5000} HTTP/1.1\r\n{head()}\r\n".encode())


def c_idle(port):
    socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(10)]
    try:
        time.sleep(1)
        return f"10 held open; GET / meanwhile: {get(port, retry=0, timeout=15)}"
    finally:
        for s in socks:
            s.close()
        time.sleep(0.3)


def c_100(port):
    with ThreadPoolExecutor(100) as ex:
        got = list(ex.map(lambda _: get(port, retry=0, timeout=30), range(100)))
    counts = {k: got.count(k) for k in sorted(set(got))}
    return ", ".join(f"{n}x {k}" for k, n in counts.items())


def c_5mb(port):
    data = b"\xe9" + os.urandom(5_000_000)
    body = form([("firmware", "big.bin", data)], BOUNDARY)
    hdr = (
        f"POST /update HTTP/1.1\r\n{head()}Content-Type: multipart/form-data; "
        f"boundary={BOUNDARY}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    sent = [0, ""]

    def send():
        try:
            s.sendall(hdr)
            for i in range(0, len(body), 16384):
                s.sendall(body[i : i + 16384])
                sent[0] = i + 16384
            sent[0] = len(body)
        except OSError as e:
            sent[1] = type(e).__name__

    t = threading.Thread(target=send, daemon=True)
    t.start()
    seen = what_came(s, 30)  # read while sending, as a browser does
    t.join(30)
    s.close()
    err = f", sender: {sent[1]}" if sent[1] else ""
    return f"{seen} (sent {min(sent[0], len(body)) // 1024} of {len(body) // 1024} KiB{err})"


def c_two_uploads(port):
    image = big_image()
    with ThreadPoolExecutor(2) as ex:
        got = list(ex.map(lambda n: upload(port, image, f"u{n}.bin"), range(2)))
    return " | ".join(got)


def c_long_name(port):
    return upload(port, big_image(), "a" * 596 + ".bin")


def c_lower_basic(port):
    return f"GET / with 'basic ...': {get(port, {'Authorization': 'basic ' + TOKEN}, retry=0)}"


CASES = [
    ("connect+close, nothing sent", c_connect_close),
    ("GARBAGE request line", c_garbage),
    ("Content-Length: abc", c_length_abc),
    ("510-byte header line", c_long_header),
    ("65 headers", c_65_headers),
    ("non-UTF-8 Content-Type", c_non_utf8),
    ("5 KB request line", c_long_line),
    ("10 idle connections", c_idle),
    ("100 concurrent GET /", c_100),
    ("5 MB upload", c_5mb),
    ("two uploads together", c_two_uploads),
    ("600-char file name", c_long_name),
    ("Authorization: basic", c_lower_basic),
]


def hostile(make, label: str, cases=CASES) -> list[tuple[str, str, str, str]]:
    """The cases in one sequence on one server; a server that died or does not answer the
    next GET / with 200 is started again for the next case."""
    rows = []
    srv = make()
    print(f"\n== hostile cases, {label}")
    for case, run in cases:
        try:
            saw = run(srv.port)
        except Exception as e:  # noqa: BLE001  (the client's own failure is a finding too)
            saw = f"client: {type(e).__name__}: {e}"
        saw += srv.settle("Update successful" in saw)
        nxt = get(srv.port)
        alive = srv.alive()
        if not alive:
            nxt += f" (server ended: {srv.last_line()[:70]})"
        rows.append((case, saw, nxt, "yes" if alive else "NO"))
        print(f"  {case:<28} saw: {saw}\n  {'':<28} next GET /: {nxt}, alive: {rows[-1][3]}")
        if not alive or nxt != "200":
            srv.restart()  # so that the next case is measured on a working server
    out = srv.stop()
    fails = [ln for ln in out.splitlines() if "Error" in ln]
    if fails:
        print(f"  server log: {len(fails)} error lines, the last {fails[-1][:100]!r}")
    return rows


# -- least heap per flow ---------------------------------------------------------------------


def flow_page(srv) -> str:
    got = get(srv.port, retry=0)
    return "ok" if got == "200" else got


def flow_upload(srv) -> str:
    got = upload(srv.port, big_image())
    return "ok" if got == "200 Update successful" else got


def least_heap(make, heaps: list[str], rounds: int, label: str) -> dict[str, str]:
    found = {}
    for flow, run in (("GET /", flow_page), ("upload 1.5 MiB", flow_upload)):
        low, bad_in_a_row, first_fail = None, 0, ""
        for heap in heaps:
            oks = 0
            for _ in range(rounds):
                try:
                    srv = make(heap)
                except AssertionError as e:
                    lines = [ln for ln in str(e).splitlines() if ln.strip()]
                    got = f"did not start ({lines[-1][:70]})"
                else:
                    got = run(srv)
                    if got != "ok" and not srv.alive():
                        got += f" (server ended: {srv.last_line()[:60]})"
                    srv.stop()
                oks += got == "ok"
                if got != "ok":
                    print(f"  {label} {flow} at {heap}: {got}")
            if oks == rounds and first_fail == "":
                low = heap
            elif first_fail == "":
                first_fail = f"{heap} ({oks}/{rounds})"
            bad_in_a_row = bad_in_a_row + 1 if oks == 0 else 0
            if bad_in_a_row == 2:
                break
        found[flow] = f"{low or '(none tried)'}; first failure {first_fail or '(none)'}"
        print(f"  {label:<10} {flow:<15} works from {found[flow]}")
    return found


def after(out: str, key: str) -> str:
    line = [ln for ln in out.splitlines() if key in ln]
    return line[0].split(key, 1)[1].strip() if line else "(not measured)"


def idle_figures(lib: Path, tmp: Path, heap: str, kinds: list[str]) -> dict[str, tuple]:
    """Free heap after the server's imports, and after 1 s of serving with nobody connected."""
    got = {}
    if "Microdot" in kinds:
        md = Microdot(lib, tmp, heap)
        with md.cond:
            md.cond.wait_for(lambda: b"probe done" in md.out, 10)
        out = md.stop()
        got["Microdot"] = (after(out, "after import: free"), after(out, "idle serving: free"))
    if "own server" in kinds:
        board = fresh_board(tmp, "own-idle")
        install_agent(board, mpy=True)
        code = "import gc\ngc.collect()\nimport acupdate.web as web\ngc.collect()\n"
        code += "print('own after import: free', gc.mem_free(), '(acupdate.web)')\n" + PROBE
        code += f"web.serve(port={free_port()}, host='127.0.0.1', user={USER!r}, "
        code += f"password={PASSWORD!r})\n"
        running = board.start(code, heap=heap)
        running.wait_output("probe done", 20)
        out = running.power_off().output
        got["own server"] = (after(out, "after import: free"), after(out, "idle serving: free"))
    return got


def brief(nxt: str) -> str:
    nxt = nxt.split(" (")[0]
    for long, word in (("ConnectionRefusedError", "refused"), ("ConnectionResetError", "reset")):
        nxt = nxt.replace(long, word)
    return nxt.replace("TimeoutError", "timeout")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--heaps", default=HEAPS, help="application heaps, tried largest first")
    ap.add_argument("--rounds", type=int, default=2, help="fresh servers per heap and flow")
    ap.add_argument("--hostile-heap", default="64K")
    ap.add_argument("--hostile-rounds", type=int, default=2, help="sequences per server")
    ap.add_argument("--buffer", type=int, help="FormDataIter.buffer_size (Microdot: 256)")
    ap.add_argument("--only", choices=("microdot", "own"))
    a = ap.parse_args(argv)
    atexit.register(lambda: [srv.stop() for srv in LIVE if srv.alive()])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    heaps = sorted(a.heaps.split(","), key=heap_bytes, reverse=True)
    hh = a.hostile_heap
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        lib = fetch_microdot(tmp)
        kinds = []
        if a.only != "own":
            kinds.append(("Microdot", lambda heap=hh: Microdot(lib, tmp, heap, a.buffer)))
        if a.only != "microdot":
            kinds.append(("own server", lambda heap=hh: Own(tmp, heap)))
        print(f"Microdot {MICRODOT} (PyPI wheel, .mpy -O3), FormDataIter.buffer_size", end=" ")
        print(f"{a.buffer or 256}; MicroPython unix port; free at start of -X heapsize={hh}:")
        print(f"  {plain_free(heap_bytes(hh))} bytes (bare interpreter)")
        idle = idle_figures(lib, tmp, hh, [label for label, _ in kinds])
        for k, (imp, serving) in idle.items():
            print(f"  {k:<10} free after import: {imp}; after 1 s of idle serving: {serving}")
        least = {}
        print(f"\n== least heap per flow ({a.rounds} round(s) per heap; heaps {heaps[0]}..)")
        for label, make in kinds:
            least[label] = least_heap(make, heaps, a.rounds, label)
        table: dict[str, dict[int, list]] = {}
        for label, make in kinds:
            for r in range(a.hostile_rounds):
                rows = hostile(make, f"{label} at {hh}, round {r + 1}")
                if label == "Microdot" and not a.buffer:  # what a user would try next
                    more = [("600-char name, buffer 1024", c_long_name)]
                    rows += hostile(lambda: Microdot(lib, tmp, hh, 1024), "Microdot", more)
                for i, row in enumerate(rows):
                    table.setdefault(label, {}).setdefault(i, []).append(row)
    print(f"\n== summary (MicroPython unix port; {time.monotonic() - t0:.0f} s)")
    print(f"{'flow: least heap':<28}" + "".join(f"| {label:<38}" for label, _ in kinds))
    for flow in ("GET /", "upload 1.5 MiB"):
        print(f"{flow:<28}" + "".join(f"| {least[label][flow]:<38}" for label, _ in kinds))
    print(f"\nhostile case at {hh}: next authenticated GET / and server alive, per round")
    print(f"{'case':<28}" + "".join(f"| {label:<38}" for label, _ in kinds))
    for i, (case, _) in enumerate(CASES + [("600-char name, buffer 1024", None)]):
        cells = []
        for label, _ in kinds:
            got = table.get(label, {}).get(i, [])
            cells.append(
                ", ".join(f"{brief(r[2])}/{'alive' if r[3] == 'yes' else 'DEAD'}" for r in got)
            )
        if any(cells):
            print(f"{case:<28}" + "".join(f"| {c:<38}" for c in cells))
    for label, _ in kinds:
        print(f"\n{label} at {hh}: what the client saw, per round")
        for rows in table.get(label, {}).values():
            print(f"  {rows[0][0]}")
            for n, row in enumerate(rows):
                print(f"    {n + 1}: {row[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
