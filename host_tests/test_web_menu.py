"""AutoConnect's UPDATE menu on the board (acupdate.web: /_ac/update, /_ac/update_act,
/_ac/update_progress, /_ac/update_result) over real HTTP on loopback, the board run by the
real MicroPython, against real servers on 127.0.0.1: the project's update server (plain,
and https with a CA file and basic auth) and scripted servers for a cut download that
resumes, a redirect, a catalog entry's wrong SHA-256 and a chunked image. Each case checks
the page or JSON the board answers and the flash: the installed image boots next, or
nothing bootable was written, the boot slot is unchanged and the pages are still served."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
import time

import pytest
from faults import ScriptServer, chunked_reply, cut, image_reply, make_certs, partial_reply, reply
from test_web_device import WebBoard, assert_untouched, slot_digest

from tools.image import build_app
from tools.server.core import UpdateServer

# The web pages' promised heap (README): 64 KiB for every case, http and https (TLS on this
# unix port takes its buffers from the MicroPython heap: m_tracked_calloc; the ESP32 port's
# mbedtls is ESP-IDF's, on the IDF heap). The least heap of each flow is bench_web.py's.
HEAP = "64K"
RESUME_HEAP = REDIRECT_HEAP = HTTPS_HEAP = HEAP
SIZE = 200_000
NAME = "app-v2.bin"
CATALOG = "/_catalog?op=list&path=."  # the request target of Config's catalog query
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
ENDED = ("SUCCESS", "FAIL", "NOAVAIL")


@pytest.fixture(scope="module")
def image() -> bytes:
    return build_app(version="2.0.0", size=SIZE, seed=21)


@pytest.fixture
def catalog_dir(tmp_path, image):
    folder = tmp_path / "catalog"
    folder.mkdir()
    (folder / NAME).write_bytes(image)
    (folder / "notes.txt").write_text("release notes\n")
    return folder


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def catalog_reply(size: int = SIZE, **extra) -> bytes:
    """The catalog of a scripted server: NAME (with `extra` keys, e.g. sha256) and a file."""
    entry = {"name": NAME, "type": "bin", "date": "05/01/26", "time": "10:00:00", "size": size}
    body = json.dumps([{**entry, **extra}, {"name": "notes.txt", "type": "file"}]).encode()
    return reply(200, body, {"Content-Type": "application/json"})


def body_at(data: bytes) -> int:
    """Where the body of reply `data` starts."""
    return data.index(b"\r\n\r\n") + 4


def install(wb: WebBoard, url: str, name: str = NAME) -> dict:
    """POST the UPDATE form for `name`: the progress page names it and the server; returns
    the progress JSON once the install has ended."""
    st, _, page = wb.request("POST", "/_ac/update_act", f"bin={name}".encode(), FORM)
    assert st == 200, (st, page[-600:], wb.running.output[-2000:])
    assert f"Installing <b>{name}</b> from {url}".encode() in page, page[-600:]
    assert b"fetch('/_ac/update_result'" in page  # the page polls, then shows the result
    return poll(wb, lambda p: p["status"] in ENDED)


def poll(wb: WebBoard, pred, timeout: float = 30) -> dict:
    """GET /_ac/update_progress until `pred(progress)`, as the progress page's script does
    every 250 ms: a refused connection is retried, as the script's fetch().catch() does
    (the board may hand its port from the web server to the install and back)."""
    end = time.monotonic() + timeout
    p = None
    while time.monotonic() < end:
        try:
            p = wb.progress()
        except (ConnectionRefusedError, ConnectionResetError):
            p = None
        if p is not None and pred(p):
            return p
        time.sleep(0.05)  # the poll's period, not a synchronisation
    raise AssertionError(f"progress never matched: {p}\n{wb.running.output[-3000:]}")


def install_through(board, image: bytes, url: str, heap: str = HEAP) -> None:
    """A board serving the menu for the update server at `url` installs `image` from it
    (see assert_installed)."""
    wb = WebBoard(board, heap=heap, update_server=url)
    try:
        assert_installed(wb, image, install(wb, url))
    finally:
        wb.stop()


def assert_installed(wb: WebBoard, image: bytes, p: dict):
    """SUCCESS with the whole image, the result page, the restart it triggers, the image in
    ota_1 and the next boot into it."""
    n = len(image)
    assert p == {"status": "SUCCESS", "amount": n, "size": n, "name": NAME, "error": ""}, (
        p,
        wb.running.output[-2000:],
    )
    st, _, page = wb.request("GET", "/_ac/update_result")
    assert st == 200 and b"Update successful" in page, page[-600:]
    assert f'data-status="SUCCESS" data-amount="{n}" data-size="{n}"'.encode() in page
    text = f"{NAME}: {n} bytes, MD5 {md5(image)}, version 2.0.0, written to ota_1 and set"
    assert text.encode() in page, page[-600:]
    res = wb.running.wait(30)  # the result page was sent: the board restarts
    assert res.reset == "hard", res.output
    assert "install SUCCESS" in res.output and "restarting into the new image" in res.output
    board = wb.board
    p1 = board.flash.part("ota_1")
    assert board.flash.read(p1.offset, n) == image
    assert board.flash.boot_partition() == p1
    res = board.run("print('up')")
    assert "slot=ota_1 version=2.0.0" in res.boot.log_line()
    assert res.boot.state == "PENDING_VERIFY"


def assert_not_bootable(wb: WebBoard):
    """Blocks may be in ota_1, but not its header: ota_1 does not boot, the board still
    boots ota_0 (v1) and serves its pages."""
    flash = wb.board.flash
    assert flash.image_problem(flash.part("ota_1")) is not None
    assert flash.boot_partition().label == "ota_0"
    st, _, page = wb.request("GET", "/")
    assert st == 200 and b"Running: <b>ota_0</b>, version <b>1.0.0</b>" in page, page[-400:]
    assert wb.running.wait_output("acupdate web: install FAIL", 5)


def assert_refused_page(wb: WebBoard, code: int, title: bytes, text: str, name: str):
    """A message page `code` with `title` and `text` for POST bin=`name`; no update ran."""
    st, _, page = wb.request("POST", "/_ac/update_act", name.encode(), FORM)
    assert st == code, (st, page[-600:])
    assert b"<h1>" + title + b"</h1>" in page and text.encode() in page, page[-600:]
    assert wb.progress()["status"] == "IDLE"


def test_install_from_the_update_server_then_the_board_boots_it(board, catalog_dir, image):
    with UpdateServer(catalog_dir) as srv:
        wb = WebBoard(board, heap=HEAP, update_server=srv.url)
        try:
            st, _, page = wb.request("GET", "/_ac/update")
            assert st == 200, page[-600:]
            assert f"Update server: {srv.url}/".encode() in page
            assert f'name="bin" id="b0" value="{NAME}" checked>'.encode() in page
            assert b"195.3 KiB" in page and b"notes.txt" not in page
            assert_installed(wb, image, install(wb, srv.url))
        finally:
            wb.stop()
        got = [r for r in srv.requests if r.path == "/" + NAME]
    assert len(got) == 1 and got[0].status == 200
    h = {k.lower(): v for k, v in got[0].headers.items()}
    p1 = board.flash.part("ota_1")
    running = build_app(version="1.0.0", size=200_000, seed=1)  # conftest's image_v1
    assert h["user-agent"] == "ESP32-http-Update" and h["cache-control"] == "no-cache"
    assert h["x-esp32-sta-mac"] == "24:0A:C4:00:00:01"
    assert h["x-esp32-ap-mac"] == "24:0A:C4:00:00:02"
    assert h["x-esp32-free-space"] == str(p1.size)
    assert h["x-esp32-sketch-size"] == str(len(running))
    assert h["x-esp32-sketch-md5"] == md5(running)
    assert h["x-esp32-chip-size"] == str(4 * 1024 * 1024)
    assert h["x-esp32-mode"] == "sketch" and h["x-esp32-version"] == "1.0.0"
    assert h["x-esp32-sdk-version"]


def test_a_name_not_in_the_catalog_is_refused(board, catalog_dir):
    with UpdateServer(catalog_dir) as srv:
        wb = WebBoard(board, heap=HEAP, update_server=srv.url)
        try:
            before = slot_digest(board)
            url = srv.url + "/"
            why = f"gone.bin is not in the catalog of {url} (any more)"
            form = b"bin=gone.bin"
            st, _, page = wb.request("POST", "/_ac/update_act", form, FORM)
            # Looked up in the catalog by the install (acupdate.web.jobs), after the progress page:
            # its result says it.
            assert st == 200 and f"Installing <b>gone.bin</b> from {url}".encode() in page
            p = poll(wb, lambda p: p["status"] in ENDED)
            assert p["status"] == "FAIL" and p["error"] == why, p
            st, _, page = wb.request("GET", "/_ac/update_result")
            assert st == 200 and b"Update failed" in page and why.encode() in page
            assert [r.path for r in srv.requests] == [CATALOG]  # no image request
            assert_untouched(wb, before)
        finally:
            wb.stop()


def test_no_image_chosen_is_refused(board, catalog_dir):
    with UpdateServer(catalog_dir) as srv:
        wb = WebBoard(board, heap=HEAP, update_server=srv.url)
        try:
            before = slot_digest(board)
            for form in ("", "x=1", "x=1&bin="):
                assert_refused_page(wb, 400, b"No image chosen", "Choose a firmware", form)
            assert not srv.requests  # refused before the server is asked
            assert_untouched(wb, before)
        finally:
            wb.stop()


def test_a_cut_download_resumes_with_range(board, image):
    full = image_reply(image)
    at = 123_457  # inside block 30: the resume asks for the block from its start
    start = at - at % 4096
    answered = []

    def ranged(conn, seen, stop):  # 206 from the asked byte on, after the cut
        answered.append((seen.range, 206))
        conn.sendall(partial_reply(image, int(seen.range[6:-1])))

    script = {CATALOG: [catalog_reply()], "/" + NAME: [cut(full, body_at(full) + at), ranged]}
    with ScriptServer(script) as srv:
        install_through(board, image, srv.url, RESUME_HEAP)
        assert [s.range for s in srv.requests("/" + NAME)] == [None, f"bytes={start}-"]
    assert answered == [(f"bytes={start}-", 206)]


def test_a_redirect_is_followed(board, image):
    script = {
        CATALOG: [catalog_reply()],
        "/" + NAME: [reply(302, b"", {"Location": f"/moved/{NAME}"})],
        f"/moved/{NAME}": [image_reply(image)],
    }
    with ScriptServer(script) as srv:
        install_through(board, image, srv.url, REDIRECT_HEAP)
        assert len(srv.requests("/" + NAME)) == 1
        moved = srv.requests(f"/moved/{NAME}")
    assert len(moved) == 1 and moved[0].headers["user-agent"] == "ESP32-http-Update"


def test_a_wrong_catalog_sha256_fails_and_nothing_boots(board, image):
    other = hashlib.sha256(b"another image").hexdigest()
    script = {CATALOG: [catalog_reply(sha256=other)], "/" + NAME: [image_reply(image)]}
    with ScriptServer(script) as srv:
        wb = WebBoard(board, heap=HEAP, update_server=srv.url)
        try:
            p = install(wb, srv.url)
            want = f"SHA-256 Check Failed: image {hashlib.sha256(image).hexdigest()}, "
            assert p["status"] == "FAIL" and p["name"] == NAME, p
            assert p["error"] == want + f"expected {other}", p
            st, _, page = wb.request("GET", "/_ac/update_result")
            assert st == 200 and b"Update failed" in page and want.encode() in page
            assert b"The running image is untouched" in page
            assert_not_bootable(wb)
        finally:
            wb.stop()
        assert len(srv.requests("/" + NAME)) == 1


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("pki"))


def test_https_with_a_ca_file_and_basic_auth_from_acupdate_json(board, catalog_dir, certs, image):
    user, password = "fleet", "pw: long enough"
    shutil.copy(certs["ca.der"], board.fs / "ca.der")
    tls = {"cert": certs["server.pem"], "key": certs["server.key"]}
    with UpdateServer(catalog_dir, user=user, password=password, **tls) as srv:
        assert srv.url.startswith("https://127.0.0.1:")
        server = {"url": srv.url, "ca": "/ca.der", "user": user, "password": password}
        (board.fs / "acupdate.json").write_text(json.dumps({"server": server}))
        wb = WebBoard(board, heap=HTTPS_HEAP)  # no update_server: /acupdate.json's is used
        try:
            st, _, page = wb.request("GET", "/_ac/update")
            assert st == 200, page[-600:]
            assert f"Update server: {srv.url}/".encode() in page
            assert f'value="{NAME}" checked>'.encode() in page, page[-600:]
            assert_installed(wb, image, install(wb, srv.url))
        finally:
            wb.stop()
        reqs = list(srv.requests)
    assert [r.path for r in reqs] == [CATALOG, CATALOG, "/" + NAME]
    assert all(r.status == 200 for r in reqs), reqs
    for r in reqs:
        auth = {k.lower(): v for k, v in r.headers.items()}["authorization"]
        assert auth == "Basic ZmxlZXQ6cHc6IGxvbmcgZW5vdWdo", auth  # fleet:pw: long enough


def test_a_chunked_image_is_sized_by_the_catalog(board, image):
    script = {CATALOG: [catalog_reply()], "/" + NAME: [chunked_reply(image, (1000, 4093, 17))]}
    with ScriptServer(script) as srv:
        install_through(board, image, srv.url)
        got = srv.requests("/" + NAME)
    assert len(got) == 1 and got[0].range is None


def test_an_upload_during_a_menu_install_gets_409_and_the_install_boots(board, image):
    full = image_reply(image)
    half = body_at(full) + SIZE // 2
    uploaded = threading.Event()

    def held(conn, seen, stop):  # half the image, the rest once the upload was answered
        conn.sendall(full[:half])
        uploaded.wait(20)
        conn.sendall(full[half:])

    script = {CATALOG: [catalog_reply()], "/" + NAME: [held]}
    with ScriptServer(script) as srv:
        wb = WebBoard(board, heap=HEAP, update_server=srv.url)
        try:
            st, _, page = wb.request("POST", "/_ac/update_act", f"bin={NAME}".encode(), FORM)
            assert st == 200, page[-600:]
            poll(wb, lambda p: p["status"] == "PROGRESS" and p["amount"] > 0)
            try:
                st, _, page = wb.upload(build_app(version="3.0.0", size=100_000, seed=5), "x.bin")
            except OSError as e:  # (once under two CPU hogs: closed without an answer)
                raise AssertionError(
                    f"upload during the install: {e!r}\n{wb.running.output}"
                ) from e
            uploaded.set()
            assert st == 409 and b"Another update is running (server of app-v2.bin" in page
            assert_installed(wb, image, poll(wb, lambda p: p["status"] in ENDED))
        finally:
            uploaded.set()
            wb.stop()
