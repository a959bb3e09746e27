"""The board's update pages (acupdate.web) over real HTTP on loopback, the board run by the
real MicroPython with a 48 KiB application heap: the upload streamed into the next slot and
the restart into it; refusals (credentials, not an image, merged image, too large, MD5,
cut off, stalled, a second upload) that write nothing bootable and leave the server up.
The helpers here serve test_web_browser.py too."""

from __future__ import annotations

import functools
import hashlib
import http.client
import json
import socket
import time
from base64 import b64encode
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import install_agent, run_json

from tools.board import Board
from tools.image import build_app, build_merged

HEAP = "64K"  # the web pages' promised heap (README): as `micropython -X heapsize=64K` has it
BOUNDARY = "----WebKitFormBoundaryAcUpdate7MA4YWxk"


@functools.lru_cache
def big_image() -> bytes:
    """A 1.5 MiB app image (v2.0.0): nearly the whole 1.5 MiB OTA slot."""
    return build_app(version="2.0.0", size=1_560_000, seed=7)


@pytest.fixture(scope="session")
def image_big() -> bytes:
    return big_image()


def free_port() -> int:
    # The device cannot report the port it got for port 0 (no getsockname in MicroPython):
    # the host picks a free one and hands it over.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class WebBoard:
    """A board serving acupdate.web on 127.0.0.1:port."""

    def __init__(self, board: Board, heap: str = HEAP, prelude: str = "", **serve):
        """prelude: device code run before serve() (a test's instrumentation)."""
        install_agent(board, mpy=True)
        self.board = board
        self.port = free_port()
        args = ", ".join(f"{k}={v!r}" for k, v in serve.items())
        code = prelude + "import acupdate.web as web\n"
        code += f"web.serve(port={self.port}, host='127.0.0.1', {args})\n"
        self.running = board.start(code, heap=heap)
        if not self.running.wait_output("acupdate web: serving on", 20):
            out = self.running.power_off()
            raise AssertionError(f"the web server did not start:\n{out.output}{out.stderr}")
        self.base = f"http://127.0.0.1:{self.port}"

    def stop(self):
        return self.running.power_off()

    def request(self, method, path, body=b"", headers=None, timeout=60):
        """(status, headers dict with lower-case names, body bytes). A refused connection
        (and a GET's reset one) is tried again for up to 10 s: the board's port closes for a
        moment when the server steps aside for an update and when it comes back (web.serve),
        and a browser's progress script retries as well."""
        end = time.monotonic() + 10
        while True:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
            try:
                c.request(method, path, body=body, headers=headers or {})
                r = c.getresponse()
                return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
            except (
                ConnectionRefusedError,
                ConnectionResetError,
                http.client.RemoteDisconnected,
            ) as e:
                if time.monotonic() > end or (
                    method != "GET" and not isinstance(e, ConnectionRefusedError)
                ):
                    raise
            finally:
                c.close()
            time.sleep(0.02)

    def progress(self, auth=None):
        st, _, body = self.request("GET", "/_ac/update_progress", headers=auth)
        assert st == 200, body
        return json.loads(body)

    def wait_progress(self, pred, timeout=20, auth=None):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            p = self.progress(auth)
            if pred(p):
                return p
            time.sleep(0.05)
        raise AssertionError(f"progress never matched: {p}\n{self.running.output}")

    def upload(self, image, name="app.bin", md5=None, auth=None):
        body = form([("md5", None, (md5 or "").encode()), ("firmware", name, image)])
        hdrs = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
        hdrs.update(auth or {})
        return self.request("POST", "/update", body, hdrs)

    def raw_upload_start(self, image, name="app.bin", send=0):
        """A socket that sent the upload's head and the body's first `send` bytes."""
        body = form([("firmware", name, image)])
        s = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        s.sendall(
            (
                f"POST /update HTTP/1.1\r\nHost: board\r\nContent-Type: multipart/form-data; "
                f"boundary={BOUNDARY}\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
        )
        s.sendall(body[:send])
        return s, body


def form(parts, boundary=BOUNDARY):
    out = bytearray()
    for name, filename, data in parts:
        out += f"--{boundary}\r\n".encode()
        disp = f'Content-Disposition: form-data; name="{name}"'
        if filename is not None:
            disp += f'; filename="{filename}"\r\nContent-Type: application/octet-stream'
        out += disp.encode() + b"\r\n\r\n" + data + b"\r\n"
    return bytes(out + f"--{boundary}--\r\n".encode())


def basic(user, password):
    return {"Authorization": "Basic " + b64encode(f"{user}:{password}".encode()).decode()}


def slot_digest(board: Board, label="ota_1") -> str:
    p = board.flash.part(label)
    return hashlib.sha256(board.flash.read(p.offset, p.size)).hexdigest()


@pytest.fixture
def web(board):
    wb = WebBoard(board)
    yield wb
    wb.stop()


def assert_untouched(wb: WebBoard, before: str):
    """Nothing bootable was written: ota_1 as before, ota_0 still boots, the server serves."""
    assert slot_digest(wb.board) == before
    assert wb.board.flash.boot_partition().label == "ota_0"
    st, _, page = wb.request("GET", "/")
    assert st == 200 and b"Running: <b>ota_0</b>, version <b>1.0.0</b>" in page, (
        st,
        page[-400:],
        wb.running.output[-2000:],
    )


def test_upload_streams_into_the_next_slot_and_restarts_into_it(web, image_big):
    md5 = hashlib.md5(image_big).hexdigest()
    s, body = web.raw_upload_start(image_big, "app-v2.bin", send=700_000)
    mid = web.wait_progress(lambda p: p["amount"] > 0)
    assert mid["status"] == "PROGRESS" and mid["name"] == "app-v2.bin"
    assert 0 < mid["amount"] < len(image_big) <= mid["size"]
    s.sendall(body[700_000:])
    reply = b""
    while chunk := s.recv(65536):
        reply += chunk
    s.close()
    assert reply.startswith(b"HTTP/1.1 200 OK"), reply[:300]
    assert b"Update successful" in reply
    assert f'data-amount="{len(image_big)}" data-size="{len(image_big)}"'.encode() in reply
    assert f"MD5 {md5}, version 2.0.0, written to ota_1".encode() in reply
    res = web.running.wait(30)
    assert res.reset == "hard", res.output
    assert "upload SUCCESS" in res.output and "restarting into the new image" in res.output
    p = web.board.flash.part("ota_1")
    assert web.board.flash.read(p.offset, len(image_big)) == image_big
    res = web.board.run("print('up')")
    assert "slot=ota_1 version=2.0.0" in res.boot.log_line()
    assert res.boot.state == "PENDING_VERIFY"


def test_form_md5_is_checked_on_the_device(web, image_big):
    before = slot_digest(web.board)
    st, _, page = web.upload(image_big, md5="0" * 32)
    assert st == 400
    got = hashlib.md5(image_big).hexdigest()
    assert f"MD5 mismatch: the file received has MD5 {got}, the form gives {'0' * 32}".encode() in (
        page
    )
    assert web.board.flash.boot_partition().label == "ota_0"
    assert web.board.flash.image_problem(web.board.flash.part("ota_1")) is not None
    assert slot_digest(web.board) != before  # written, but its header held back: not bootable
    st, _, page = web.upload(image_big, md5=got.upper())
    assert st == 200 and b"Update successful" in page
    assert web.running.wait(30).reset == "hard"


def test_wrong_password_gets_401_and_nothing_is_written(board, image_big):
    wb = WebBoard(board, user="admin", password="s3cret")
    try:
        before = slot_digest(board)
        st, hdrs, page = wb.upload(image_big, auth=basic("admin", "wrong"))
        assert st == 401 and hdrs["www-authenticate"] == 'Basic realm="acupdate"'
        assert b"need the right user name and password" in page
        for path in ("/", "/update", "/_ac/update", "/_ac/update_progress"):
            assert wb.request("GET", path)[0] == 401
        assert slot_digest(board) == before
        assert wb.progress(basic("admin", "s3cret"))["status"] == "IDLE"
        st, _, page = wb.request("GET", "/update", headers=basic("admin", "s3cret"))
        assert st == 200 and b'name="firmware"' in page
    finally:
        wb.stop()


def test_not_an_image_is_refused_before_a_byte_is_written(web):
    before = slot_digest(web.board)
    st, _, page = web.upload(b"these are release notes, not firmware\n" * 1000, "notes.txt")
    assert st == 400
    assert b"Verify Bin Header Failed: first byte is 0x74, an ESP32 image starts" in page
    p = web.progress()
    assert p["status"] == "FAIL" and p["name"] == "notes.txt"
    assert_untouched(web, before)


def test_merged_image_and_too_large_image_are_refused(web, image_v2):
    before = slot_digest(web.board)
    st, _, page = web.upload(build_merged(image_v2), "merged.bin")
    assert st == 400 and b"Not an app image" in page and b"merged" in page
    big = build_app(version="9.9.9", size=1_700_000, seed=3)
    st, _, page = web.upload(big, "big.bin")
    assert st == 413
    assert b"Not Enough space" in page and b"1572864" in page
    assert_untouched(web, before)


def test_upload_cut_off_by_the_browser(web, image_big):
    before = slot_digest(web.board)
    s, body = web.raw_upload_start(image_big, send=400_000)
    web.wait_progress(lambda p: p["amount"] > 0)
    s.close()  # the browser tab was closed
    p = web.wait_progress(lambda p: p["status"] == "FAIL")
    assert p["error"] == f"upload cut off: 400000 of {len(body)} bytes came"
    assert web.board.flash.boot_partition().label == "ota_0"
    assert web.board.flash.image_problem(web.board.flash.part("ota_1")) is not None
    assert slot_digest(web.board) != before  # blocks written, the header held back
    st, _, page = web.upload(image_big)  # the server goes on serving: the next one works
    assert st == 200 and b"Update successful" in page
    assert web.running.wait(30).reset == "hard"


def test_second_upload_while_one_runs_gets_409(web, image_big, image_v2):
    s, body = web.raw_upload_start(image_big, "first.bin", send=500_000)
    p = web.wait_progress(lambda p: p["amount"] > 0)
    st, _, page = web.upload(image_v2, "second.bin")
    assert st == 409
    assert b"Another update is running (upload of first.bin: " in page
    assert web.progress()["name"] == "first.bin"
    s.sendall(body[500_000:])
    reply = b""
    while chunk := s.recv(65536):
        reply += chunk
    s.close()
    assert reply.startswith(b"HTTP/1.1 200 OK") and b"first.bin: 1560000 bytes" in reply
    assert p["status"] == "PROGRESS"
    assert web.running.wait(30).reset == "hard"


# 62K: the margin under the promise. After an update job the server serves its pages from a
# heap in pieces; with a 668-byte constant (progressbar.JS) GET /update failed at 62K every
# time, and at 64K now and then on a busy machine (the pieces depend on the job's timing).
@pytest.mark.parametrize("heap", [HEAP, "62K"])
def test_stalled_upload_is_dropped_and_the_slot_freed(board, image_big, heap):
    wb = WebBoard(board, heap, idle=1)
    try:
        s, _ = wb.raw_upload_start(image_big, send=100_000)  # and then nothing more
        p = wb.wait_progress(lambda p: p["status"] == "FAIL", timeout=15)
        assert p["error"] == "the browser sent nothing for 1000 ms"
        s.close()
        assert board.flash.boot_partition().label == "ota_0"
        st, _, page = wb.request("GET", "/update")
        assert st == 200, (page, wb.running.output[-2000:])
    finally:
        wb.stop()


def test_unknown_pages_and_methods(web):
    st, _, page = web.request("GET", "/nope")
    assert st == 404 and b"This board has no page /nope" in page
    st, _, page = web.request("GET", "/_ac/update_act")
    assert st == 405 and b"/_ac/update_act takes POST" in page
    st, _, page = web.request("POST", "/", b"x=1", {"Content-Type": "text/plain"})
    assert st == 405 and b"/ takes GET" in page
    st, _, page = web.request("GET", "/_ac/update_result")
    assert st == 200 and b"No update has run since the start." in page
    st, _, page = web.request("POST", "/update", b"", {"Content-Type": "text/plain"})
    assert st == 411


def _send_and_read(s: socket.socket, data: bytes) -> bytes:
    """Send `data` on `s`, then read the whole answer (an OSError: its text)."""
    reply = b""
    try:
        s.sendall(data)
        while chunk := s.recv(65536):
            reply += chunk
    except OSError as e:
        reply += repr(e).encode()
    s.close()
    return reply


def test_two_uploads_started_together_one_200_one_409(web, image_big, image_v2):
    # (the second was reset: accepted by the server, then dropped with its loop when the
    # server stepped aside for the first, or reset in the backlog of the listening socket
    # the server closed)
    bodies = {
        n: form([("firmware", n, img)]) for n, img in (("a.bin", image_big), ("b.bin", image_v2))
    }
    socks = {n: socket.create_connection(("127.0.0.1", web.port), timeout=60) for n in bodies}
    heads = {
        n: (
            f"POST /update HTTP/1.1\r\nHost: board\r\nContent-Type: multipart/form-data; "
            f"boundary={BOUNDARY}\r\nContent-Length: {len(b)}\r\n\r\n"
        ).encode()
        for n, b in bodies.items()
    }
    with ThreadPoolExecutor(2) as pool:
        futs = {n: pool.submit(_send_and_read, socks[n], heads[n] + bodies[n]) for n in bodies}
        replies = {n: f.result() for n, f in futs.items()}
    won = [n for n, r in replies.items() if r.startswith(b"HTTP/1.1 200 OK")]
    lost = [n for n, r in replies.items() if r.startswith(b"HTTP/1.1 409 Conflict")]
    tops = {n: r[:300] for n, r in replies.items()}
    assert len(won) == 1 and len(lost) == 1, (tops, web.running.output[-3000:])
    assert b"Another update is running (upload of " in replies[lost[0]]
    assert web.running.wait(30).reset == "hard"
    assert web.board.flash.boot_partition().label == "ota_1"
    want = image_big if won[0] == "a.bin" else image_v2
    part = web.board.flash.part("ota_1")
    assert web.board.flash.read(part.offset, len(want)) == want


def test_the_home_page_reads_the_version_as_ota_image_does(agent_board):
    # web.home.version() reads the app descriptor itself (GET / does not load ota.image)
    heads = [
        build_app(version="1.0.0", size=4096)[:80],
        build_app(version="", size=4096)[:80],
        build_app(version="v" * 31, size=4096)[:80],
        bytes(80),  # no app descriptor
    ]
    code = f"""import json
from acupdate.web.home import version
from acupdate.ota.image import AppDesc
out = []
for h in {heads!r}:
    try:
        v = AppDesc(bytearray(h) + bytearray(176)).version or "(blank)"
    except ValueError:
        v = "(no app descriptor)"
    out.append([version(bytearray(h)), v])
print(json.dumps(out))
"""
    out, _ = run_json(agent_board, code)
    assert [a for a, _ in out] == ["1.0.0", "(blank)", "v" * 31, "(no app descriptor)"]
    assert all(a == b for a, b in out), out
