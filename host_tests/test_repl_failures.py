"""Issue 15: at the REPL, an operational failure of ota.ls(), ota.update() or
ota.update(name) is one printed line saying what happened, naming the URL or the image, and
what to try, never a traceback; the call returns a status name ("FAIL", "NOAVAIL"). A
programming error (a wrong argument type) still raises. One test per failure, on the
simulated board with the agent compiled as tools.deploy installs it, at the promised heap
(faults.HTTP_HEAP) unless the heap is the failure."""

from __future__ import annotations

import re
import socket

import pytest
from faults import HTTP_HEAP

from tools.image import build_app
from tools.server.core import UpdateServer


@pytest.fixture
def server(tmp_path):
    """An update server whose catalog holds app.bin (an app image), junk.bin (not an
    image), an empty folder `empty`, and no folder `nope`."""
    folder = tmp_path / "catalog"
    folder.mkdir()
    (folder / "app.bin").write_bytes(build_app(version="2.0.0", size=100_000, seed=2))
    (folder / "junk.bin").write_bytes(b"hello, not an image\n")
    (folder / "empty").mkdir()
    with UpdateServer(folder) as srv:
        yield srv


@pytest.fixture
def down_url():
    """The URL of a loopback port nothing listens on."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/"


def repl(board, *calls: str, heap: str = HTTP_HEAP) -> list[str]:
    """Run each call (`ota.` + call) on the board and print its value's repr after it;
    the printed lines (empty ones left out). The run must end without a traceback."""
    code = "import acupdate.repl as ota\n" + "".join(f"print(repr(ota.{c}))\n" for c in calls)
    res = board.run(code, heap=heap)
    out = res.output + res.stderr
    assert res.returncode == 0 and "Traceback" not in out, out
    return [ln for ln in res.output.splitlines() if ln.strip()]


def test_server_down(agent_board, down_url):
    lines = repl(agent_board, f"ls(url={down_url!r})", f"update(url={down_url!r})",
                 f"update('app.bin', url={down_url!r})")  # fmt: skip
    port = down_url.rsplit(":", 1)[1].rstrip("/")
    why = (
        f"Cannot connect to 127.0.0.1:{port} (ECONNREFUSED): is the update server at "
        f"{down_url} running, and its URL right?"
    )
    assert lines == [
        f"Update server {down_url}",
        f"ls failed: {why}",
        "'FAIL'",
        f"Update failed: {why}",
        "'FAIL'",
        f"Updating app.bin from {down_url}",
        f"Update of app.bin failed: {why}",
        "'FAIL'",
    ]


def test_bad_url(agent_board):
    lines = repl(agent_board, "ls(url='htp:/x')", "update('app.bin', url='htp:/x')")
    why = "update server URL 'htp:/x' has no scheme: use http://host:port/path"
    assert lines == [f"ls failed: {why}", "'FAIL'", f"Update failed: {why}", "'FAIL'"]


def test_no_server_in_the_settings(agent_board):
    lines = repl(agent_board, "ls()", "update()")
    why = (
        "no update server: pass url='http://host:8000/path', or deploy one (tools.deploy "
        "--server URL)"
    )
    assert lines == [f"ls failed: {why}", "'FAIL'", f"Update failed: {why}", "'FAIL'"]


def test_name_not_in_the_catalog(agent_board, server):
    url = server.url + "/"
    lines = repl(agent_board, f"update('app9.bin', url={url!r})")
    assert lines == [
        f"Updating app9.bin from {url}",
        f"Update failed: app9.bin is not on the update server {url} (File Not Found (404)): "
        "ota.ls() lists what is",
        "'FAIL'",
    ]


def test_empty_catalog(agent_board, server):
    url = server.url + "/empty"
    lines = repl(agent_board, f"ls(url={url!r})", f"update(url={url!r})")
    line = (
        f"No available firmwares: the catalog of {url} lists no .bin image: copy an app "
        "image into the server's folder"
    )
    assert lines == [f"Update server {url}", line, "'NOAVAIL'", line, "'NOAVAIL'"]


def test_missing_folder(agent_board, server):
    url = server.url + "/nope"
    lines = repl(agent_board, f"ls(url={url!r})", f"update(url={url!r})")
    why = (
        f"Update server responds (404) to the catalog query for {url}: the server has no such "
        "folder: check the URL's path"
    )
    assert lines == [f"Update server {url}", f"ls failed: {why}", "'FAIL'",
                     f"Update failed: {why}", "'FAIL'"]  # fmt: skip


def test_refused_image(agent_board, server):
    url = server.url + "/"
    lines = repl(agent_board, f"update('junk.bin', url={url!r})", "status()")
    assert lines[:3] == [
        f"Updating junk.bin from {url}",
        "Update of junk.bin failed: Verify Bin Header Failed: first byte is 0x68, an ESP32 "
        "image starts with 0xE9: the board keeps the image it has",
        "'FAIL'",
    ]
    assert "ota_0  1.0.0" in lines[4] and "running" in lines[4], lines


def test_wifi_down(agent_board, server):
    # boot.py joins no access point: the board has no network.
    (agent_board.fs / "boot.py").write_text("# no Wi-Fi\n")
    url = server.url + "/"
    lines = repl(agent_board, f"ls(url={url!r})", f"update('app.bin', url={url!r})")
    port = url.rsplit(":", 1)[1].rstrip("/")
    why = (
        f"Cannot connect to 127.0.0.1:{port} (EHOSTUNREACH): the board's Wi-Fi is not "
        "connected (network.WLAN(network.STA_IF).isconnected() is False): check "
        '/acupdate.json\'s "wifi" (tools.deploy --wifi-ssid, --wifi-key), then reset the board'
    )
    assert lines == [
        f"Update server {url}",
        f"ls failed: {why}",
        "'FAIL'",
        f"Updating app.bin from {url}",
        f"Update of app.bin failed: {why}",
        "'FAIL'",
    ]


def test_heap_exhausted(agent_board, server):
    url = server.url + "/"
    lines = repl(agent_board, f"ls(url={url!r})", f"update('app.bin', url={url!r})", heap="24K")
    line = re.compile(
        r"(ls|Update) failed: the heap is too small \(\d+ bytes free\): machine.reset\(\) "
        r"gives a fresh heap, then try again"
    )
    assert len(lines) == 4, lines
    assert line.fullmatch(lines[0]) and lines[0].startswith("ls "), lines
    assert line.fullmatch(lines[2]) and lines[2].startswith("Update "), lines
    assert lines[1] == lines[3] == "'FAIL'"


@pytest.mark.parametrize(
    "call, error",
    [
        ("update(5)", "TypeError: name must be a str, got int"),
        ("update('app.bin', url=8000)", "TypeError: url must be a str, got int"),
        ("ls(url=b'http://x/')", "TypeError: url must be a str, got bytes"),
    ],
)
def test_wrong_argument_types_raise(agent_board, call, error):
    res = agent_board.run(f"import acupdate.repl as ota\nota.{call}\n", heap=HTTP_HEAP)
    assert res.returncode != 0
    assert error in res.output + res.stderr


def test_success_prints_no_blank_line_and_returns_success(agent_board, server):
    url = server.url + "/"
    lines = repl(agent_board, f"update('app.bin', url={url!r}, reboot=False, quiet=True)")
    assert lines == [
        "Update successful: app.bin is written and boots at the next reset",
        "'SUCCESS'",
    ]
