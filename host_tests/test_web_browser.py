"""The board's update pages in headless Chromium (Debian's chromium driven by Playwright):
choose an image, upload it, watch the bar reach 100 %, read the result, then the board
boots the new image; the same through AutoConnect's UPDATE menu against our update server;
a wrong password, a wrong file and a second upload while one runs. Every page is saved as
a screenshot under artifacts/screenshots/ for a person to look at."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_web_device import WebBoard, basic, big_image, slot_digest

from tools.browser_setup import ensure_chromium, launch, playwright_version
from tools.server.core import UpdateServer


@pytest.fixture(scope="session")
def image_big() -> bytes:
    return big_image()


SHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"
BAR = "document.getElementById('bar').value"


@pytest.fixture(scope="session")
def browser():
    ensure_chromium()
    playwright_version()  # a clear error when the package is missing
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        b = launch(pw)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 800, "height": 640})
    pg = ctx.new_page()
    yield pg
    ctx.close()


def shot(pg, name):
    pg.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def out_text(pg, contains, timeout=30_000):
    pg.wait_for_function(
        "t => document.getElementById('out').textContent.includes(t)", arg=contains, timeout=timeout
    )
    return pg.inner_text("#out")


def test_upload_in_the_browser_then_the_board_boots_it(board, page, image_big, tmp_path):
    wb = WebBoard(board)
    try:
        page.goto(wb.base + "/")
        assert "Running: ota_0, version 1.0.0" in page.inner_text("body")
        shot(page, "home")
        page.click("nav a[href='/update']")
        page.wait_for_url("**/update")
        shot(page, "upload-form")
        assert not page.is_visible("#bar")
        f = tmp_path / "app-v2.bin"
        f.write_bytes(image_big)
        page.set_input_files("input[name=firmware]", str(f))
        # A slower link than loopback, so that the bar can be seen on its way.
        cdp = page.context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.send(
            "Network.emulateNetworkConditions",
            {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 1e6},
        )
        page.click("button")
        page.wait_for_function(f"{BAR} > 0 && {BAR} < 100", timeout=30_000)
        assert "PROGRESS: " in page.inner_text("#st")
        shot(page, "upload-progress")
        text = out_text(page, "Update successful")
        assert page.evaluate(BAR) == 100
        n = len(image_big)
        assert page.inner_text("#st") == f"SUCCESS: 100 % ({n} of {n} bytes)"
        assert f"app-v2.bin: {n} bytes" in text and "version 2.0.0, written to ota_1" in text
        assert "restarts now" in text
        shot(page, "upload-result")
        res = wb.running.wait(30)
        assert res.reset == "hard", res.output
    finally:
        wb.stop()
    res = board.run("print('up')")
    assert "slot=ota_1 version=2.0.0" in res.boot.log_line()
    assert res.boot.state == "PENDING_VERIFY"


@pytest.fixture
def update_server(tmp_path, image_big):
    cat = tmp_path / "catalog"
    cat.mkdir()
    (cat / "app-v2.bin").write_bytes(image_big)
    (cat / "notes.txt").write_text("release notes\n")
    with UpdateServer(cat) as srv:
        yield srv


# The web pages' promised heap (README), the UPDATE menu's as the upload's.
MENU_HEAP = "64K"


def test_update_menu_installs_from_the_update_server(board, page, update_server, image_big):
    wb = WebBoard(board, heap=MENU_HEAP, update_server=update_server.url)
    try:
        page.goto(wb.base + "/")
        page.click("nav a[href='/_ac/update']")
        page.wait_for_url("**/_ac/update")
        radios = page.query_selector_all("input[type=radio][name=bin]")
        assert [r.get_attribute("value") for r in radios] == ["app-v2.bin"]
        assert radios[0].is_checked()
        row = page.inner_text("table")
        assert "app-v2.bin" in row and "1.49 MiB" in row and "notes.txt" not in row
        shot(page, "update-menu")
        page.click("form button")
        page.wait_for_url("**/_ac/update_act")
        assert "Installing app-v2.bin from " + update_server.url in page.inner_text("body")
        text = out_text(page, "Update successful")
        n = len(image_big)
        assert page.evaluate(BAR) == 100
        assert page.inner_text("#st") == f"SUCCESS: 100 % ({n} of {n} bytes)"
        assert f"app-v2.bin: {n} bytes" in text and "written to ota_1" in text
        shot(page, "update-result")
        assert wb.running.wait(30).reset == "hard"
    finally:
        wb.stop()
    got = [r for r in update_server.requests if r.path == "/app-v2.bin"]
    assert len(got) == 1 and got[0].status == 200
    hdrs = {k.lower(): v for k, v in got[0].headers.items()}
    assert hdrs["user-agent"] == "ESP32-http-Update"
    assert hdrs["x-esp32-sta-mac"] == "24:0A:C4:00:00:01"
    res = board.run("print('up')")
    assert "slot=ota_1 version=2.0.0" in res.boot.log_line()
    assert res.boot.state == "PENDING_VERIFY"


def test_update_menu_without_firmwares_and_with_the_server_down(board, page, tmp_path):
    cat = tmp_path / "empty"
    cat.mkdir()
    srv = UpdateServer(cat).start()
    wb = WebBoard(board, heap=MENU_HEAP, update_server=srv.url)
    try:
        page.goto(wb.base + "/_ac/update")
        assert "No available firmwares" in page.inner_text("body")
        assert not page.query_selector_all("input[type=radio]")
        shot(page, "update-menu-empty")
        srv.stop()
        page.goto(wb.base + "/_ac/update")
        err = page.inner_text("p.err")
        assert err.startswith(f"Cannot connect to 127.0.0.1:{srv.port}"), err
        shot(page, "update-menu-server-down")
    finally:
        wb.stop()
        srv.stop()


def test_wrong_password_gets_401(browser, board, image_big, tmp_path):
    wb = WebBoard(board, user="admin", password="s3cret")
    before = slot_digest(board)
    try:
        ctx = browser.new_context(http_credentials={"username": "admin", "password": "guess"})
        pg = ctx.new_page()
        resp = pg.goto(wb.base + "/update")
        assert resp.status == 401
        assert "need the right user name and password" in pg.inner_text("body")
        shot(pg, "wrong-password")
        ctx.close()
        ctx = browser.new_context(http_credentials={"username": "admin", "password": "s3cret"})
        pg = ctx.new_page()
        assert pg.goto(wb.base + "/update").status == 200
        assert pg.is_visible("input[name=firmware]")
        ctx.close()
        assert wb.progress(basic("admin", "s3cret"))["status"] == "IDLE"
        assert slot_digest(board) == before
    finally:
        wb.stop()


def test_wrong_file_is_refused(board, page, tmp_path):
    wb = WebBoard(board)
    before = slot_digest(board)
    try:
        page.goto(wb.base + "/update")
        f = tmp_path / "photo.bin"
        f.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 200)
        page.set_input_files("input[name=firmware]", str(f))
        page.click("button")
        text = out_text(page, "Update failed")
        assert "Verify Bin Header Failed: first byte is 0x89" in text
        assert "The running image is untouched" in text
        assert page.inner_text("#st").startswith("The board answered 400")
        shot(page, "upload-wrong-file")
        assert slot_digest(board) == before
        assert board.flash.boot_partition().label == "ota_0"
        assert page.goto(wb.base + "/").status == 200
    finally:
        wb.stop()


def test_second_upload_while_one_runs(board, page, image_big, image_v2, tmp_path):
    wb = WebBoard(board)
    try:
        page.goto(wb.base + "/update")  # a second person has the page open
        f = tmp_path / "second.bin"
        f.write_bytes(image_v2)
        page.set_input_files("input[name=firmware]", str(f))
        s, body = wb.raw_upload_start(image_big, "first.bin", send=600_000)
        wb.wait_progress(lambda p: p["amount"] > 0)
        page.click("button")
        text = out_text(page, "Another update is running")
        assert "(upload of first.bin: " in text
        assert page.inner_text("#st") == "The board answered 409 Conflict"
        shot(page, "upload-conflict")
        page.goto(wb.base + "/")  # other pages wait until the update ends
        assert "An update is running" in page.inner_text("body")
        shot(page, "busy")
        s.close()  # the first one is cut off: the board stays on ota_0 and serves on
        p = wb.wait_progress(lambda p: p["status"] == "FAIL")
        assert p["error"].startswith("upload cut off: 600000 of ")
        assert board.flash.boot_partition().label == "ota_0"
        assert page.goto(wb.base + "/").status == 200
    finally:
        wb.stop()
