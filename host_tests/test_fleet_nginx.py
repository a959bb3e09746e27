"""Fleets (issue 14): a simulated board updated end to end, by the agent run in the real
MicroPython, from Debian's real nginx serving an export (`acupdate-server export`, its
generated configuration, run unprivileged on a loopback port), and from a plain static
server (`python -m http.server` on the exported tree) through the catalog's md5.

Checked against nginx: the catalog query (tools.server's JSON and 403s), the device check,
HEAD, Range and a cut download resumed with `Range: bytes=N-` (through a proxy that cuts
the first reply), 304 when the board runs the image already, basic authentication before
anything else, and https checked against the CA file on the board."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from conftest import run_json
from faults import DEVICE, make_certs

from tools.server import UpdateServer
from tools.server.export import Options, export
from tools.server.nginxrun import serve

BLOCK = 4096
AT = 24 * BLOCK  # where the proxy cuts the first reply (a block's start)

FLEET = """
import json
from acupdate.agent import Updater, NAMES
from acupdate.config import Config
up = Updater(Config({cfg}))
out = {{}}
try:
    out["catalog"] = [[e.name, e.size] for e in up.catalog()]
except (OSError, ValueError) as e:
    out["catalog"] = str(e)
for name in {names}:
    st = up.update(name)
    out[name] = [NAMES[st], up.error]
print(json.dumps(out))
"""


@pytest.fixture
def base():
    """A folder every user may read: as root, nginx runs as nobody (tmp_path is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="acupdate-fleet-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


@pytest.fixture
def firmware(base: Path, image_v1: bytes, image_v2: bytes) -> Path:
    """app.bin (v2), v1.bin (what the board runs) and sub/app.bin."""
    folder = base / "firmware"
    (folder / "sub").mkdir(parents=True)
    (folder / "app.bin").write_bytes(image_v2)
    (folder / "v1.bin").write_bytes(image_v1)
    (folder / "sub" / "app.bin").write_bytes(image_v2)
    day_ago = time.time() - 86400
    for name in ("app.bin", "v1.bin", "sub/app.bin"):
        os.utime(folder / name, (day_ago, day_ago))
    return folder


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def update(board, cfg: str, names: list[str]) -> dict:
    got, _ = run_json(board, FLEET.format(cfg=cfg, names=repr(names)), timeout=120)
    return got


def fetch(port: int, target: str, headers=None, method="GET", context=None):
    if context is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    else:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=30, context=context)
    try:
        conn.request(method, target, headers=headers or {})
        response = conn.getresponse()
        return response.status, response, response.read()
    finally:
        conn.close()


def access_log(site: Path, lines: int, timeout: float = 30.0) -> list[str]:
    """nginx's access log once it has ``lines`` lines (it writes each when a reply ends)."""
    deadline = time.monotonic() + timeout
    while True:
        found = (site / "run" / "access.log").read_text().splitlines()
        if len(found) >= lines or time.monotonic() > deadline:
            return found
        time.sleep(0.05)  # the log is a file: no event tells when nginx appends to it


def flashed(board, size: int) -> bytes:
    slot = board.flash.part("ota_1")
    return board.flash.read(slot.offset, size)


def test_board_updates_from_nginx_with_304_head_and_range(
    agent_board, firmware: Path, base: Path, image_v1: bytes, image_v2: bytes
):
    site = base / "site"
    nginx, port, report = serve(firmware, site)
    with nginx:
        # The protocol, as tools.server answers it.
        with UpdateServer(firmware, sha256=True) as reference:
            for query in ("op=list&path=.", "op=list&path=sub/", "op=list"):
                status, response, body = fetch(port, "/_catalog?" + query)
                assert status == 200 and response.getheader("Content-Type") == "application/json"
                assert body == fetch(reference.port, "/_catalog?" + query)[2], query
        for query, status in (("op=nope", 403), ("", 403), ("op=list&path=..", 403)):
            assert fetch(port, "/_catalog?" + query)[0] == status, query
        assert fetch(port, "/_catalog?op=list&path=nothere")[0] == 404
        assert fetch(port, "/app.bin")[0] == 403  # not an HTTPUpdate client
        assert fetch(port, "/nothere.bin", DEVICE)[0] == 404
        status, response, body = fetch(port, "/app.bin", DEVICE, method="HEAD")
        assert status == 200 and body == b""
        assert response.getheader("Content-Length") == str(len(image_v2))
        assert response.getheader("x-MD5") == md5(image_v2)
        assert response.getheader("x-SHA256") == hashlib.sha256(image_v2).hexdigest()
        status, response, body = fetch(port, "/app.bin", {**DEVICE, "Range": "bytes=1000-"})
        assert status == 206 and body == image_v2[1000:]
        assert (
            response.getheader("Content-Range") == f"bytes 1000-{len(image_v2) - 1}/{len(image_v2)}"
        )
        assert response.getheader("x-MD5") == md5(image_v2)
        # The board: v1.bin is what it runs (304: no update), then app.bin.
        cfg = f"url='http://127.0.0.1:{port}/', reboot=False"
        got = update(agent_board, cfg, ["v1.bin", "app.bin"])
        lines = access_log(site, 11)
    assert got["catalog"] == [["app.bin", len(image_v2)], ["v1.bin", len(image_v1)]]
    assert got["v1.bin"] == ["NOAVAIL", ""] and got["app.bin"] == ["SUCCESS", ""], got
    assert flashed(agent_board, len(image_v2)) == image_v2
    assert agent_board.flash.boot_partition().label == "ota_1"
    board = [ln for ln in lines if " 24:0A:C4:00:00:01 " in ln and "HEAD" not in ln]
    assert ['"GET /v1.bin HTTP/1.1" 304' in ln for ln in board[-2:]] == [True, False], board
    assert '"GET /app.bin HTTP/1.1" 200' in board[-1], board


class CutProxy:
    """127.0.0.1:<port> -> nginx: the first reply to GET ``path`` is cut after ``at`` body
    bytes (the connection closed); every other request passes. ``seen``: (path, Range)."""

    def __init__(self, upstream: int, path: str, at: int) -> None:
        self.upstream, self.path, self.at = upstream, path, at
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.seen: list[tuple[str, str | None]] = []
        self.cut = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        with client, socket.create_connection(("127.0.0.1", self.upstream), timeout=30) as up:
            client.settimeout(30)
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = client.recv(4096)
                if not chunk:
                    return
                head += chunk
            lines = head.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
            path = lines[0].split(" ")[1]
            ranges = [
                v.strip()
                for k, _, v in (h.partition(":") for h in lines[1:])
                if k.strip().lower() == "range"
            ]
            self.seen.append((path, ranges[0] if ranges else None))
            cut = path == self.path and not self.cut
            self.cut = self.cut or cut
            up.sendall(head)
            reply = b""
            while chunk := up.recv(65536):
                if not cut:
                    client.sendall(chunk)
                    continue
                reply += chunk
                end = reply.find(b"\r\n\r\n")
                if end >= 0 and len(reply) >= end + 4 + self.at:
                    client.sendall(reply[: end + 4 + self.at])
                    return  # closed here: the board sees the body end early

    def close(self) -> None:
        # Wake the accept() first, then close: a socket closed while its accept() blocks
        # leaves that accept() to run later on whatever socket gets the freed descriptor
        # next (here a later test's server: its board's request reached this proxy).
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.thread.join(timeout=5)
        assert not self.thread.is_alive(), "CutProxy's accept thread did not stop"
        self.listener.close()


def test_a_cut_download_from_nginx_resumes_with_range(
    agent_board, firmware: Path, base: Path, image_v2: bytes
):
    site = base / "site"
    nginx, port, _ = serve(firmware, site)
    proxy = CutProxy(port, "/app.bin", AT)
    try:
        with nginx:
            cfg = f"url='http://127.0.0.1:{proxy.port}/', reboot=False, backoff=0.05"
            got = update(agent_board, cfg, ["app.bin"])
            lines = access_log(site, 3)
    finally:
        proxy.close()
    assert got["app.bin"] == ["SUCCESS", ""], got
    assert [s for s in proxy.seen if s[0] == "/app.bin"] == [
        ("/app.bin", None),
        ("/app.bin", f"bytes={AT}-"),
    ]
    assert flashed(agent_board, len(image_v2)) == image_v2
    resumed = [ln for ln in lines if f'"bytes={AT}-"' in ln]
    assert len(resumed) == 1 and '"GET /app.bin HTTP/1.1" 206 ' in resumed[0], lines
    assert f" 206 {len(image_v2) - AT} " in resumed[0], resumed


def test_board_updates_from_nginx_over_https_with_basic_auth(
    agent_board, firmware: Path, base: Path, image_v1: bytes, image_v2: bytes
):
    certs = make_certs(base)
    site = base / "site"
    options = {"cert": str(certs["server.pem"]), "key": str(certs["server.key"])}
    nginx, port, _ = serve(firmware, site, user="board", password="s3cret", **options)
    shutil.copy(certs["ca.der"], agent_board.fs / "ca.der")
    context = ssl.create_default_context(cafile=str(certs["ca.pem"]))
    good = {"Authorization": "Basic " + base64.b64encode(b"board:s3cret").decode()}
    with nginx:
        # Authentication comes first: before the device check, the 304 and the catalog's 403.
        running = {**DEVICE, "x-ESP32-sketch-md5": md5(image_v1)}
        assert fetch(port, "/v1.bin", running, context=context)[0] == 401
        assert fetch(port, "/app.bin", context=context)[0] == 401
        assert fetch(port, "/_catalog?op=bad", context=context)[0] == 401
        assert fetch(port, "/v1.bin", {**running, **good}, context=context)[0] == 304
        status, response, _ = fetch(port, "/app.bin", {**DEVICE, **good}, "HEAD", context)
        assert status == 200 and response.getheader("x-MD5") == md5(image_v2)
        url = f"https://127.0.0.1:{port}/"
        wrong = update(agent_board, f"url={url!r}, ca='/ca.der', user='board', password='x'", [])
        cfg = f"url={url!r}, ca='/ca.der', user='board', password='s3cret', reboot=False"
        got = update(agent_board, cfg, ["v1.bin", "app.bin"])
    assert wrong["catalog"] == f"Update server responds (401) to the catalog query for {url}", wrong
    assert got["catalog"] == [["app.bin", len(image_v2)], ["v1.bin", len(image_v1)]], got
    assert got["v1.bin"] == ["NOAVAIL", ""] and got["app.bin"] == ["SUCCESS", ""], got
    assert flashed(agent_board, len(image_v2)) == image_v2


def test_board_updates_from_a_plain_static_server_through_the_catalog_md5(
    agent_board, firmware: Path, base: Path, image_v2: bytes
):
    """`python -m http.server` on the exported tree: it ignores the query string, so
    /_catalog?op=list&path=. is www/_catalog (the root listing), and sends images without
    x-MD5: the agent takes the md5 of the catalog entry (the lead's device change)."""
    site = base / "site"
    export(Options(str(firmware), str(site)))  # its nginx part is not used here
    command = [sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1"]
    command += ["--directory", str(site / "www")]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()  # "Serving HTTP on 127.0.0.1 port N (...) ..."
        port = int(banner.split(" port ")[1].split()[0])
        status, response, body = fetch(port, "/_catalog?op=list&path=.")
        assert status == 200 and json.loads(body)[0]["md5"] == md5(image_v2)
        status, response, body = fetch(port, "/app.bin", DEVICE)
        assert status == 200 and body == image_v2 and response.getheader("x-MD5") is None
        got = update(agent_board, f"url='http://127.0.0.1:{port}/', reboot=False", ["app.bin"])
    finally:
        proc.terminate()
        proc.wait(30)
    assert got["app.bin"] == ["SUCCESS", ""], got
    assert flashed(agent_board, len(image_v2)) == image_v2
    assert agent_board.flash.boot_partition().label == "ota_1"
