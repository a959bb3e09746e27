"""acupdate's update server (tools.server), exercised as a real server on 127.0.0.1.

Replays AutoConnect's exchanges (catalog, image, the 403 rules) and checks what
the server adds: streaming to many clients, the MD5 cache, HEAD, Range, 304,
HTTPS, basic auth, path-traversal refusal, robustness, access log and CLI.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import http.client
import ipaddress
import json
import os
import random
import re
import selectors
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import pytest
from faults import DEVICE, MAC

from tools.server import ServerError, UpdateServer
from tools.server.__main__ import main

REPO = Path(__file__).resolve().parent.parent
ESP8266 = {
    "User-Agent": "ESP8266-http-Update",
    **{k.replace("ESP32", "ESP8266"): v for k, v in DEVICE.items() if k.startswith("x-")},
}
DAY_AGO = time.time() - 86400
SECRET = b"TOP-SECRET-OUTSIDE-THE-CATALOG"


def image(size: int, seed: int) -> bytes:
    return b"\xe9" + random.Random(seed).randbytes(size - 1)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, bytes]:
    """A catalog folder: images, other files, folders, links in and out."""
    root = tmp_path / "catalog"
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "fw").mkdir()
    content = {
        "app.bin": image(300_000, 1),
        "fake.bin": b"\x00not an image",
        "notes.txt": b"release notes\n",
        "sub/inner.bin": image(5_000, 2),
        "sub/fw": b"a file named like a folder of the root\n",
    }
    for name, data in content.items():
        (root / name).write_bytes(data)
    os.utime(root / "app.bin", (DAY_AGO, DAY_AGO))
    (tmp_path / "secret.txt").write_bytes(SECRET)
    os.symlink("app.bin", root / "link_in.bin")
    os.symlink("../secret.txt", root / "evil.bin")
    os.symlink(tmp_path, root / "outdir")
    return content


@pytest.fixture
def root(tmp_path: Path, files: dict[str, bytes]) -> Path:
    return tmp_path / "catalog"


@pytest.fixture
def srv(root: Path):
    with UpdateServer(root) as server:
        yield server


def fetch(
    server: UpdateServer,
    target: str,
    headers: dict[str, str] | None = None,
    method: str = "GET",
    conn: http.client.HTTPConnection | None = None,
) -> tuple[int, http.client.HTTPResponse, bytes]:
    own = conn is None
    if conn is None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request(method, target, headers=headers or {})
        response = conn.getresponse()
        return response.status, response, response.read()
    finally:
        if own:
            conn.close()


def raw(server: UpdateServer, data: bytes) -> bytes:
    """Send bytes as they are, return everything until the server closes."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def status_of(reply: bytes) -> int:
    match = re.match(rb"HTTP/1\.[01] (\d{3}) ", reply)
    assert match, reply[:200]
    return int(match.group(1))


def catalog(server: UpdateServer, path: str | None = ".") -> list[dict]:
    query = "/_catalog?op=list" + ("" if path is None else f"&path={path}")
    status, response, body = fetch(server, query)
    assert status == 200, body
    assert response.getheader("Content-Type") == "application/json"
    entries = json.loads(body)
    assert isinstance(entries, list)
    return entries


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# --- the catalog ------------------------------------------------------------------


def test_catalog_lists_bin_file_and_directory(srv: UpdateServer, root: Path) -> None:
    entries = {entry["name"]: entry for entry in catalog(srv)}
    assert set(entries) == {"app.bin", "fake.bin", "notes.txt", "sub", "fw", "link_in.bin"}
    mtime = time.localtime((root / "app.bin").stat().st_mtime)
    assert entries["app.bin"] == {
        "name": "app.bin",
        "type": "bin",
        "date": time.strftime("%x", mtime),
        "time": time.strftime("%X", mtime),
        "size": 300_000,
    }
    assert entries["fake.bin"] == {"name": "fake.bin", "type": "file"}
    assert entries["notes.txt"] == {"name": "notes.txt", "type": "file"}
    assert entries["sub"] == {"name": "sub", "type": "directory"}
    assert entries["link_in.bin"]["type"] == "bin"  # a link inside the catalog is fine
    assert catalog(srv, None) == catalog(srv, "") == catalog(srv, ".") == list(entries.values())


def test_catalog_classifies_against_the_listed_folder(
    srv: UpdateServer, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The root has a folder "fw" and no "deep": a server that asks the current
    # folder instead of sub/ would call sub/fw a directory and sub/deep a file.
    monkeypatch.chdir(root)
    entries = {entry["name"]: entry["type"] for entry in catalog(srv, "sub")}
    assert entries == {"deep": "directory", "fw": "file", "inner.bin": "bin"}
    assert catalog(srv, "sub/deep") == []
    assert catalog(srv, "./sub/") == catalog(srv, "sub")


@pytest.mark.parametrize(
    "target",
    ["/_catalog", "/_catalog?path=.", "/_catalog?op=delete&path=.", "/_catalog?op=&path=."],
)
def test_catalog_without_list_op_is_forbidden(srv: UpdateServer, target: str) -> None:
    status, _, _ = fetch(srv, target)
    assert status == 403


def test_catalog_of_a_missing_folder_is_404(srv: UpdateServer) -> None:
    assert fetch(srv, "/_catalog?op=list&path=nowhere")[0] == 404
    assert fetch(srv, "/_catalog?op=list&path=notes.txt")[0] == 404


def test_catalog_survives_fifo_and_unicode_names(srv: UpdateServer, root: Path) -> None:
    os.mkfifo(root / "pipe.bin")  # opening it for reading would block a naive server
    name = "fw-\u00e9t\u00e9.bin"
    (root / name).write_bytes(image(1000, 3))
    entries = {entry["name"]: entry["type"] for entry in catalog(srv)}
    assert entries["pipe.bin"] == "file"
    assert entries[name] == "bin"
    assert fetch(srv, "/pipe.bin", DEVICE)[0] == 404
    status, response, body = fetch(srv, "/fw-%C3%A9t%C3%A9.bin", DEVICE)
    assert status == 200 and body == (root / name).read_bytes()
    assert "filename*=UTF-8''fw-%C3%A9t%C3%A9.bin" in response.getheader("Content-Disposition")


def test_catalog_lists_each_images_sha256_and_md5_when_asked(
    root: Path, files: dict[str, bytes], srv: UpdateServer
) -> None:
    plain = catalog(srv)
    assert not any("sha256" in entry or "md5" in entry for entry in plain)
    with UpdateServer(root, sha256=True) as server:
        listed = catalog(server)
        # app.bin and link_in.bin (the same real file) are hashed once, and the image
        # reply's x-SHA256 comes from the same cache entry
        assert server.md5_computations == 1
        assert catalog(server) == listed and server.md5_computations == 1
        status, response, body = fetch(server, "/app.bin", DEVICE)
        assert status == 200 and body == files["app.bin"]
        assert server.md5_computations == 1
        sub = catalog(server, "sub")
    digest = hashlib.sha256(files["app.bin"]).hexdigest()
    md5 = hashlib.md5(files["app.bin"]).hexdigest()
    assert response.getheader("x-SHA256") == digest and response.getheader("x-MD5") == md5
    entries = {entry["name"]: entry for entry in listed}
    assert entries["app.bin"]["sha256"] == entries["link_in.bin"]["sha256"] == digest
    assert entries["app.bin"]["md5"] == entries["link_in.bin"]["md5"] == md5
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    # otherwise the catalog is the same: same entries, same fields, md5 and sha256 after size
    digests = ("md5", "sha256")
    assert [{k: v for k, v in entry.items() if k not in digests} for entry in listed] == plain
    assert list(entries["app.bin"]) == ["name", "type", "date", "time", "size", "md5", "sha256"]
    assert [e["name"] for e in listed if "sha256" in e] == ["app.bin", "link_in.bin"]
    assert [e["name"] for e in listed if "md5" in e] == ["app.bin", "link_in.bin"]
    inner = {entry["name"]: entry for entry in sub}["inner.bin"]
    assert inner["sha256"] == hashlib.sha256(files["sub/inner.bin"]).hexdigest()
    assert inner["md5"] == hashlib.md5(files["sub/inner.bin"]).hexdigest()
    assert "sha256" not in {entry["name"]: entry for entry in sub}["fw"]


def test_catalog_sha256_follows_a_replaced_image(root: Path) -> None:
    with UpdateServer(root, sha256=True) as server:
        first = {e["name"]: e for e in catalog(server)}["app.bin"]["sha256"]
        new = image(300_000, 7)
        (root / "tmp.bin").write_bytes(new)
        os.replace(root / "tmp.bin", root / "app.bin")
        second = {e["name"]: e for e in catalog(server)}["app.bin"]
    assert second["sha256"] == hashlib.sha256(new).hexdigest() != first
    assert second["md5"] == hashlib.md5(new).hexdigest()
    assert second["size"] == len(new)


# --- images -----------------------------------------------------------------------


def test_image_reply_headers_and_body(srv: UpdateServer, files: dict[str, bytes]) -> None:
    status, response, body = fetch(srv, "/app.bin", DEVICE)
    assert status == 200
    assert response.getheader("Content-Type") == "application/octet-stream"
    assert response.getheader("Content-Disposition") == 'attachment; filename="app.bin"'
    assert response.getheader("Content-Length") == "300000"
    assert re.fullmatch(r"[0-9a-f]{32}", response.getheader("x-MD5"))
    assert response.getheader("x-MD5") == md5(files["app.bin"])
    assert body == files["app.bin"]


def test_image_in_a_sub_folder(srv: UpdateServer, files: dict[str, bytes]) -> None:
    status, response, body = fetch(srv, "/sub/inner.bin", DEVICE)
    assert status == 200 and body == files["sub/inner.bin"]
    assert response.getheader("x-MD5") == md5(files["sub/inner.bin"])


def test_image_request_in_absolute_form(srv: UpdateServer, files: dict[str, bytes]) -> None:
    status, _, body = fetch(srv, f"http://127.0.0.1:{srv.port}/app.bin", DEVICE)
    assert status == 200 and body == files["app.bin"]


def test_missing_file_and_folders_are_404(srv: UpdateServer) -> None:
    for target in ("/nothing.bin", "/sub", "/sub/", "/", "/app.bin/"):
        assert fetch(srv, target, DEVICE)[0] == 404, target


@pytest.mark.parametrize(
    "missing", [k for k in DEVICE if k.startswith("x-") and k != "x-ESP32-mode"]
)
def test_image_needs_every_identity_header(srv: UpdateServer, missing: str) -> None:
    headers = {k: v for k, v in DEVICE.items() if k != missing}
    status, _, body = fetch(srv, "/app.bin", headers)
    assert status == 403 and body != b"" and len(body) < 200


@pytest.mark.parametrize("agent", [None, "Mozilla/5.0", "curl/8.0", "esp32-http-update"])
def test_image_needs_the_httpupdate_user_agent(srv: UpdateServer, agent: str | None) -> None:
    headers = {k: v for k, v in DEVICE.items() if k != "User-Agent"}
    if agent is not None:
        headers["User-Agent"] = agent
    assert fetch(srv, "/app.bin", headers)[0] == 403


def test_identity_of_esp8266_and_header_case(srv: UpdateServer, files: dict[str, bytes]) -> None:
    assert fetch(srv, "/app.bin", ESP8266)[2] == files["app.bin"]
    mixed = {**ESP8266, "User-Agent": "ESP32-http-Update"}  # ESP32 agent, ESP8266 headers
    assert fetch(srv, "/app.bin", mixed)[0] == 403
    lower = {k.lower(): v for k, v in DEVICE.items()}
    lower["user-agent"] = "ESP32-http-Update/1.0"
    assert fetch(srv, "/app.bin", lower)[0] == 200


def test_head_has_the_get_headers_and_no_body(srv: UpdateServer, files: dict[str, bytes]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    with contextlib.closing(conn):
        status, head, body = fetch(srv, "/app.bin", DEVICE, "HEAD", conn)
        assert status == 200 and body == b""
        # Same connection: any stray body bytes would garble this reply.
        status, get, body = fetch(srv, "/app.bin", DEVICE, "GET", conn)
    assert status == 200 and body == files["app.bin"]
    for name in ("Content-Length", "x-MD5", "Content-Disposition", "Content-Type"):
        assert head.getheader(name) == get.getheader(name), name
    srv.wait_requests(2)
    assert " 200 0 " in srv.access_log[-2] and " 200 300000 " in srv.access_log[-1]


@pytest.mark.parametrize(
    ("spec", "first", "last"),
    [
        ("bytes=10-19", 10, 19),
        ("bytes=299990-", 299990, 299999),
        ("bytes=-7", 299993, 299999),
        ("bytes=5-999999999", 5, 299999),
        ("bytes=-999999999", 0, 299999),
        ("bytes=0-0", 0, 0),
    ],
)
def test_range(
    srv: UpdateServer, files: dict[str, bytes], spec: str, first: int, last: int
) -> None:
    status, response, body = fetch(srv, "/app.bin", {**DEVICE, "Range": spec})
    assert status == 206
    assert response.getheader("Content-Range") == f"bytes {first}-{last}/300000"
    assert response.getheader("Content-Length") == str(last - first + 1)
    assert response.getheader("x-MD5") == md5(files["app.bin"])  # of the whole file
    assert body == files["app.bin"][first : last + 1]


@pytest.mark.parametrize("spec", ["bytes=300000-", "bytes=300000-300010", "bytes=-0"])
def test_unsatisfiable_range_is_416(srv: UpdateServer, spec: str) -> None:
    status, response, _ = fetch(srv, "/app.bin", {**DEVICE, "Range": spec})
    assert status == 416
    assert response.getheader("Content-Range") == "bytes */300000"


@pytest.mark.parametrize(
    "spec",
    ["bytes=abc", "bytes=5-2", "items=0-1", "bytes=", "bytes=-", "0-9", "bytes=1" + "0" * 20 + "-"],
)
def test_malformed_range_is_400(srv: UpdateServer, files: dict[str, bytes], spec: str) -> None:
    assert fetch(srv, "/app.bin", {**DEVICE, "Range": spec})[0] == 400
    assert fetch(srv, "/app.bin", DEVICE)[2] == files["app.bin"]


def test_several_ranges_get_the_whole_file(srv: UpdateServer, files: dict[str, bytes]) -> None:
    status, _, body = fetch(srv, "/app.bin", {**DEVICE, "Range": "bytes=0-1,5-6"})
    assert status == 200 and body == files["app.bin"]


def test_304_when_the_device_runs_this_image(srv: UpdateServer, files: dict[str, bytes]) -> None:
    digest = md5(files["app.bin"])
    for running in (digest, digest.upper()):
        status, response, body = fetch(srv, "/app.bin", {**DEVICE, "x-ESP32-sketch-md5": running})
        assert status == 304 and body == b""
        assert response.getheader("x-MD5") == digest
    assert fetch(srv, "/app.bin", DEVICE)[0] == 200  # another running image: update


# --- many devices, the MD5 cache ----------------------------------------------------


def test_concurrent_downloads_are_all_complete(srv: UpdateServer, files: dict[str, bytes]) -> None:
    count = 20
    start = threading.Barrier(count)
    results: list[tuple[int, str, str] | BaseException] = [ValueError("not run")] * count

    def download(i: int) -> None:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=20)
            conn.connect()
            start.wait(10)
            status, response, body = fetch(srv, "/app.bin", DEVICE, conn=conn)
            conn.close()
            results[i] = (status, response.getheader("x-MD5"), md5(body))
        except BaseException as err:  # reported below
            results[i] = err

    threads = [threading.Thread(target=download, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    expected = md5(files["app.bin"])
    assert results == [(200, expected, expected)] * count
    assert srv.md5_computations == 1  # computed once, shared by all
    assert srv.wait_requests(count)
    assert sum(" 200 300000 " in line for line in srv.access_log) == count


def test_md5_is_computed_once_per_file_version(srv: UpdateServer) -> None:
    for _ in range(3):
        assert fetch(srv, "/app.bin", DEVICE)[0] == 200
    assert srv.md5_computations == 1


@pytest.mark.parametrize("how", ["in place", "by rename"])
def test_md5_follows_a_rewritten_file(srv: UpdateServer, root: Path, how: str) -> None:
    path = root / "app.bin"
    before = fetch(srv, "/app.bin", DEVICE)[1].getheader("x-MD5")
    new = image(300_000, 99)  # same size, new content, then the same old mtime again
    if how == "in place":
        with open(path, "r+b") as file:
            file.write(new)
    else:
        (root / "tmp.bin").write_bytes(new)
        os.replace(root / "tmp.bin", path)
    os.utime(path, (DAY_AGO, DAY_AGO))
    status, response, body = fetch(srv, "/app.bin", DEVICE)
    assert status == 200 and body == new
    assert response.getheader("x-MD5") == md5(new) != before
    assert srv.md5_computations == 2


def test_md5_of_a_fresh_file_is_not_cached(srv: UpdateServer, root: Path) -> None:
    # Timestamps can be as coarse as a kernel tick: a file rewritten in place
    # within the same tick keeps size, mtime and inode. So the digest of a file
    # modified in the last seconds is never cached, and the MD5 follows every
    # rewrite; once the file is older, its digest is cached.
    path = root / "fresh.bin"
    for seed in range(3):
        data = image(4096, seed)
        with open(path, "wb") as file:
            file.write(data)
        status, response, body = fetch(srv, "/fresh.bin", DEVICE)
        assert status == 200 and body == data
        assert response.getheader("x-MD5") == md5(data)
    assert srv.md5_computations == 3
    assert fetch(srv, "/fresh.bin", DEVICE)[0] == 200
    assert srv.md5_computations == 4  # still fresh: hashed again
    os.utime(path, (DAY_AGO, DAY_AGO))
    for _ in range(2):
        assert fetch(srv, "/fresh.bin", DEVICE)[1].getheader("x-MD5") == md5(data)
    assert srv.md5_computations == 5  # old enough: hashed once more, then cached


# --- path traversal ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "/../secret.txt",
        "/sub/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/%252e%252e/secret.txt",
        "/%252e%252e%252fsecret.txt",
        "/..%5csecret.txt",
        "/..\\secret.txt",
        "//etc/passwd",
        "/%2fetc%2fpasswd",
        "/evil.bin",
        "/outdir/secret.txt",
        "/app.bin%00.txt",
        "/sub/..",
    ],
)
def test_image_path_traversal_is_refused(srv: UpdateServer, target: str) -> None:
    status, response, body = fetch(srv, target, DEVICE)
    assert status == 403
    assert b"Path traversal detected" in body and SECRET not in body
    assert response.reason == "Path traversal detected"


@pytest.mark.parametrize(
    "path",
    [
        "..",
        "../..",
        "sub/../..",
        "%2e%2e",
        "%252e%252e",
        "..%5c..",
        "/etc",
        "/",
        "outdir",
        "sub%00",
    ],
)
def test_catalog_path_traversal_is_refused(srv: UpdateServer, path: str) -> None:
    status, _, body = fetch(srv, f"/_catalog?op=list&path={path}")
    assert status == 403 and b"Path traversal detected" in body
    assert b"secret" not in body


# --- malformed requests ---------------------------------------------------------------

LONG = b"a" * 70_000
MANY_HEADERS = b"".join(b"X-%d: 1\r\n" % i for i in range(120))


@pytest.mark.parametrize(
    ("request_bytes", "expected"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
        (b"GET / HTTP/1.1 extra\r\n\r\n", 400),
        (b"GET / HTTP/one\r\n\r\n", 400),
        (b"BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        (b"DELETE /app.bin HTTP/1.1\r\n\r\n", 405),
        (b"POST /_catalog?op=list HTTP/1.1\r\nContent-Length: 2\r\n\r\nab", 405),
        (b"GET /app.bin HTTP/1.1\r\nX-Long: " + LONG + b"\r\n\r\n", 431),
        (b"GET /app.bin HTTP/1.1\r\n" + MANY_HEADERS + b"\r\n", 431),
        (b"GET /" + LONG + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET /_catalog?op=list HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400),
        (b"GET * HTTP/1.1\r\n\r\n", 400),
        (b"GET /_catalog?op=list HTTP/1.1\r\nContent-Length: \xb2\r\n\r\n", 400),
        (b"GET /\r\n\r\n", 400),
    ],
)
def test_malformed_requests_get_4xx(
    srv: UpdateServer, files: dict[str, bytes], request_bytes: bytes, expected: int
) -> None:
    reply = raw(srv, request_bytes)
    assert status_of(reply) == expected
    if expected == 405:
        assert b"\r\nAllow: GET, HEAD\r\n" in reply
    assert srv.wait_requests(1)
    assert f" {expected} " in srv.access_log[-1]
    assert fetch(srv, "/app.bin", DEVICE)[2] == files["app.bin"]  # still serving


FUZZ_PIECES = [
    "..",
    ".",
    "%2e",
    "%2E%2e",
    "%252e",
    "%00",
    "%5c",
    "\\",
    "/",
    "//",
    "%2f",
    "%",
    "%zz",
    "+",
    "app.bin",
    "sub",
    "inner.bin",
    "evil.bin",
    "outdir",
    "secret.txt",
    "link_in.bin",
    "pipe",
    "_catalog",
    "?",
    "&",
    "=",
    "op=list",
    "path=",
    "\x7f",
    "\u00e9",
    "#",
    ";",
    " ",
]
FUZZ_HEADERS = [
    "Range: bytes=0-10",
    "Range: bytes=-",
    "Range: bytes=99999999999999999999-",
    "Range: x",
    "Authorization: Basic Og==",
    "Content-Length: 3",
    "Content-Length: -1",
    "Expect: 100-continue",
    "Transfer-Encoding: chunked",
    "x-ESP32-sketch-md5: zz",
    "If-None-Match: *",
    "Host:",
    ": no name",
    "no colon",
    " folded",
    "User-Agent: ESP8266-http-Update",
]


FUZZ_BASES = ["/app.bin", "/sub/inner.bin", "/_catalog?op=list&path=sub", "/_catalog?op=list"]


def fuzz_request(rng: random.Random) -> bytes:
    """A request near the protocol: valid ones, mutated ones, and plain noise."""
    if rng.random() < 0.05:
        return rng.randbytes(rng.randint(1, 300))
    target = rng.choice(FUZZ_BASES)
    for _ in range(rng.choice([0, 0, 1, 2, 4])):
        at = rng.randint(1, len(target))
        target = target[:at] + rng.choice(FUZZ_PIECES) + target[at:]
    method = rng.choice(["GET"] * 6 + ["HEAD"] * 2 + ["get", "POST", "M" * 40, ""])
    version = rng.choice(["HTTP/1.1"] * 6 + ["HTTP/1.0", "HTTP/2.0", "HTTP/1", ""])
    lines = [f"{method} {target} {version}".strip()]
    if rng.random() < 0.8:
        lines += [f"{k}: {v}" for k, v in DEVICE.items() if rng.random() < 0.97]
    lines += rng.sample(FUZZ_HEADERS, rng.choice([0, 0, 1, 2]))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")


def test_fuzzed_requests_never_break_the_server(
    srv: UpdateServer, root: Path, files: dict[str, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    os.mkfifo(root / "pipe")
    rng = random.Random(20261127)
    for _ in range(300):
        data = fuzz_request(rng)
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)  # no more requests: the server closes after replying
            reply = b""
            try:
                while chunk := sock.recv(65536):
                    reply += chunk
            except ConnectionResetError:
                pass
        assert SECRET not in reply, data
        for status in re.findall(rb"HTTP/1\.1 (\d{3}) ", reply):
            assert int(status) < 500 or int(status) == 505, (data, reply[:300])
    assert fetch(srv, "/app.bin", DEVICE)[2] == files["app.bin"]
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


def test_clients_that_vanish_do_not_stop_the_server(
    srv: UpdateServer, files: dict[str, bytes]
) -> None:
    socket.create_connection(("127.0.0.1", srv.port), timeout=5).close()  # says nothing
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
        sock.sendall(b"GET /app.bin HTTP/1.1\r\n")  # half a request
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
        head = "".join(f"{k}: {v}\r\n" for k, v in DEVICE.items())
        sock.sendall(f"GET /app.bin HTTP/1.1\r\n{head}\r\n".encode())
        assert sock.recv(12) == b"HTTP/1.1 200"  # then hang up mid-body
    assert fetch(srv, "/app.bin", DEVICE)[2] == files["app.bin"]


def test_keep_alive_serves_several_requests(srv: UpdateServer, files: dict[str, bytes]) -> None:
    with contextlib.closing(http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)) as conn:
        assert fetch(srv, "/_catalog?op=list", conn=conn)[0] == 200
        assert fetch(srv, "/nothing.bin", DEVICE, conn=conn)[0] == 404
        assert fetch(srv, "/app.bin", DEVICE, conn=conn)[2] == files["app.bin"]


def test_too_many_busy_clients_get_503(root: Path) -> None:
    (root / "big.bin").write_bytes(image(32 * 1024 * 1024, 9))
    with UpdateServer(root, max_clients=1) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as first:
            head = "".join(f"{k}: {v}\r\n" for k, v in DEVICE.items())
            first.sendall(f"GET /big.bin HTTP/1.1\r\n{head}\r\n".encode())
            assert first.recv(12) == b"HTTP/1.1 200"  # busy: the rest waits for this reader
            # The next device is told to come back later (it is answered at once,
            # before it sends its request: the reply cannot be lost to a reset).
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
                reply = sock.recv(4096)
            assert status_of(reply) == 503 and b"\r\nRetry-After: " in reply
            assert server.evictions == 0
        assert server.wait_for(lambda: server.open_connections == 0)
        assert fetch(server, "/_catalog?op=list")[0] == 200  # the slot is free again


def test_a_new_client_takes_the_place_of_one_waiting_for_its_request(
    root: Path, files: dict[str, bytes]
) -> None:
    with UpdateServer(root, max_clients=2) as server:
        kept = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        assert fetch(server, "/_catalog?op=list", conn=kept)[0] == 200  # then idle, kept alive
        assert server.wait_for(lambda: server.waiting_connections == 1)
        silent = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        assert server.wait_for(lambda: server.waiting_connections == 2)
        # Full: a device is served, in the place of the one that waited longest (kept).
        assert fetch(server, "/app.bin", DEVICE)[2] == files["app.bin"]
        assert server.evictions == 1
        assert server.wait_for(lambda: server.open_connections == 1)  # silent is left
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
            fetch(server, "/_catalog?op=list", conn=kept)
        kept.close()
        later = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        assert server.wait_for(lambda: server.waiting_connections == 2)
        assert fetch(server, "/app.bin", DEVICE)[2] == files["app.bin"]  # silent's place
        assert server.evictions == 2
        assert silent.recv(1) == b""  # closed by the server
        assert server.wait_for(lambda: server.open_connections == 1)  # later is kept
        silent.close()
        later.close()


@pytest.mark.parametrize("tls", [False, True])
def test_a_request_head_or_handshake_has_head_timeout_seconds(
    root: Path, tmp_path: Path, tls: bool
) -> None:
    # One byte every 0.4 s: each of the server's reads is quick, the whole head is not.
    if tls:  # the start of a ClientHello record of 512 bytes
        cert, key = make_certificate(tmp_path)
        options: dict = {"cert": cert, "key": key}
        data = b"\x16\x03\x01\x02\x00\x01" + b"\x00" * 511
    else:
        options = {}
        data = b"GET /_catalog?op=list HTTP/1.1\r\n" + b"X-Slow: yes\r\n" * 40
    with UpdateServer(root, head_timeout=1.5, timeout=30, **options) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            began = time.monotonic()
            sent = 0
            sock.settimeout(0.4)
            while time.monotonic() - began < 25:
                try:
                    if sock.recv(65536) == b"":
                        break  # closed by the server
                except TimeoutError:
                    sock.sendall(data[sent : sent + 1])
                    sent += 1
                except ConnectionResetError:
                    break
            took = time.monotonic() - began
        assert server.wait_for(lambda: server.open_connections == 0, timeout=30)
    assert 1.5 <= took < 25 and sent >= 3, (took, sent)


def test_stop_closes_idle_connections(root: Path) -> None:
    server = UpdateServer(root, timeout=60).start()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    assert fetch(server, "/_catalog?op=list", conn=conn)[0] == 200  # idle keep-alive
    assert server.stop(timeout=5) is True
    conn.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=5).close()


# --- access log, recorded requests ----------------------------------------------------


def test_access_log_and_recorded_requests(srv: UpdateServer) -> None:
    count = srv.request_count
    fetch(srv, "/_catalog?op=list&path=.")
    fetch(srv, "/app.bin", DEVICE)
    fetch(srv, "/app.bin", {**DEVICE, "User-Agent": "curl/8"})
    assert srv.wait_requests(count + 3)
    # Each line is written once its reply is sent: their order may differ.
    lines = list(srv.access_log)[-3:]
    (catalog_line,) = [line for line in lines if "_catalog" in line]
    (image_line,) = [line for line in lines if "/app.bin" in line and "curl" not in line]
    (refused_line,) = [line for line in lines if "curl" in line]
    assert catalog_line.startswith('127.0.0.1 - "GET /_catalog?op=list&path=." 200 ')
    assert image_line.startswith(f'127.0.0.1 {MAC} "GET /app.bin" 200 300000 ')
    assert refused_line.startswith(f'127.0.0.1 {MAC} "GET /app.bin" 403 ')
    assert "User-Agent 'curl/8' is not an HTTPUpdate client" in refused_line  # why
    (record,) = [r for r in list(srv.requests)[-3:] if r.status == 200 and r.path == "/app.bin"]
    method, path, headers, status = record
    assert (method, path, status) == ("GET", "/app.bin", 200)
    assert {k: headers[k] for k in DEVICE} == DEVICE


def test_requests_are_recorded_before_the_reply(srv: UpdateServer) -> None:
    # No waiting: a client holding its reply finds its request in srv.requests.
    for i in range(20):
        headers = {**DEVICE, "x-ESP32-STA-MAC": f"24:0A:C4:00:00:{i:02X}"}
        assert fetch(srv, "/app.bin", headers)[0] == 200
        method, path, seen, status = srv.requests[-1]
        assert (method, path, status) == ("GET", "/app.bin", 200)
        assert seen["x-ESP32-STA-MAC"] == headers["x-ESP32-STA-MAC"]
    assert fetch(srv, "/_catalog?op=list", {"X-Probe": "1"})[0] == 200
    assert srv.requests[-1] == ("GET", "/_catalog?op=list", srv.requests[-1].headers, 200)
    assert srv.requests[-1].headers["X-Probe"] == "1"


# --- HTTPS and basic authentication -----------------------------------------------------


def make_certificate(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "acupdate test server")])
    now = datetime.datetime.now(datetime.UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_https_with_a_verified_certificate(
    root: Path, tmp_path: Path, files: dict[str, bytes]
) -> None:
    cert, key = make_certificate(tmp_path)
    with UpdateServer(root, cert=cert, key=key) as server:
        assert server.url == f"https://127.0.0.1:{server.port}"
        # A plain-HTTP client on the TLS port is turned away without harm.
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(b"GET /_catalog?op=list HTTP/1.1\r\n\r\n")
            try:
                reply = sock.recv(4096)
            except ConnectionResetError:
                reply = b""
            assert b"200 OK" not in reply
        untrusting = ssl.create_default_context()
        with pytest.raises(ssl.SSLCertVerificationError):
            http.client.HTTPSConnection("127.0.0.1", server.port, context=untrusting).connect()
        trusting = ssl.create_default_context(cafile=str(cert))
        conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=trusting, timeout=10)
        with contextlib.closing(conn):
            assert "app.bin" in {
                e["name"] for e in json.loads(fetch(server, "/_catalog?op=list", conn=conn)[2])
            }
            status, response, body = fetch(server, "/app.bin", DEVICE, conn=conn)
            assert status == 200 and body == files["app.bin"]
            assert response.getheader("x-MD5") == md5(body)
            status, _, body = fetch(
                server, "/app.bin", {**DEVICE, "Range": "bytes=-100"}, conn=conn
            )
            assert status == 206 and body == files["app.bin"][-100:]


def test_https_settings_are_checked(root: Path, tmp_path: Path) -> None:
    with pytest.raises(ServerError, match="does not exist"):
        UpdateServer(root, cert=tmp_path / "none.pem", key=tmp_path / "none.key")
    with pytest.raises(ServerError, match="both"):
        UpdateServer(root, cert=tmp_path / "none.pem")
    (tmp_path / "bad.pem").write_text("not a certificate")
    with pytest.raises(ServerError, match="cannot use certificate"):
        UpdateServer(root, cert=tmp_path / "bad.pem", key=tmp_path / "bad.pem")


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def test_basic_authentication(root: Path, files: dict[str, bytes]) -> None:
    with UpdateServer(root, user="fleet", password="s3cret") as server:
        for headers in (
            {},
            basic("fleet", "wrong"),
            basic("other", "s3cret"),
            {"Authorization": "Basic !!"},
        ):
            status, response, _ = fetch(server, "/_catalog?op=list", headers)
            assert status == 401
            assert response.getheader("WWW-Authenticate").startswith("Basic realm=")
            assert fetch(server, "/app.bin", {**DEVICE, **headers})[0] == 401
        good = basic("fleet", "s3cret")
        assert fetch(server, "/_catalog?op=list", good)[0] == 200
        assert fetch(server, "/app.bin", {**DEVICE, **good})[2] == files["app.bin"]
        assert fetch(server, "/app.bin", good)[0] == 403  # the password is not an identity


# --- the command line -------------------------------------------------------------------


def test_cli_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tools.server", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0
    options = ("--port", "--bind", "--catalog", "--log", "--cert", "--key", "--user", "--sha256")
    options += ("--max-clients", "--head-timeout", "--timeout")
    for option in options:
        assert option in result.stdout


def test_cli_errors_exit_2_with_a_message(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "no-such-folder")
    assert main(["-d", missing, "-p", "0"]) == 2
    assert f"catalog folder {missing!r} does not exist" in capsys.readouterr().err
    assert main(["-d", str(root / "notes.txt"), "-p", "0"]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert main(["-d", str(root), "--cert", str(tmp_path / "c.pem"), "--key", "k"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["-d", str(root), "--user", "fleet"]) == 2
    assert "password" in capsys.readouterr().err
    secret_file = str(tmp_path / "no-password-file")
    assert main(["-d", str(root), "--user", "fleet", "--password-file", secret_file]) == 2
    assert f"cannot read --password-file {secret_file!r}" in capsys.readouterr().err
    assert main(["-d", str(root), "--log", "LOUD"]) == 2
    assert "'LOUD' is not one of" in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["-d", str(root), "-b", "127.0.0.1", "-p", str(port)]) == 2
        assert f"port {port} is already in use" in capsys.readouterr().err


def read_until(stream: IO[bytes], pattern: bytes, timeout: float = 20) -> bytes:
    """Read a child's pipe until ``pattern`` appears (or it closes, or time runs out)."""
    seen = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while not re.search(pattern, seen):
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                break
            chunk = os.read(stream.fileno(), 4096)
            if not chunk:
                break
            seen += chunk
    return seen


@contextlib.contextmanager
def serving(command: list[str], cwd: Path):
    """The server `command` started, (its stderr pipe, its port); at the end SIGTERM, which
    it must obey with exit status 0."""
    proc = subprocess.Popen(command, cwd=cwd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        banner = read_until(proc.stderr, rb"serving .* on 127\.0\.0\.1:(\d+)")
        found = re.search(rb"serving .* on 127\.0\.0\.1:(\d+)", banner)
        assert found, banner
        yield proc.stderr, int(found.group(1))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()


def listed(log: IO[bytes], port: int, path: str) -> dict[str, dict]:
    """The catalog of `path` as the server at `port` lists it (JSON, 200), by name; its
    access-log line is checked too."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/_catalog?op=list&path=" + path)
    response = conn.getresponse()
    assert response.status == 200
    assert response.getheader("Content-Type", "").startswith("application/json")
    entries = {entry["name"]: entry for entry in json.loads(response.read())}
    conn.close()
    line = f'"GET /_catalog?op=list&path={path}" 200'.encode()
    assert line in read_until(log, re.escape(line)), line
    return entries


@pytest.mark.parametrize("sha256", [False, True])
def test_cli_serves_until_sigterm(root: Path, files: dict[str, bytes], sha256: bool) -> None:
    command = [sys.executable, "-m", "tools.server", "-d", str(root), "-b", "127.0.0.1", "-p", "0"]
    command += ["--sha256"] if sha256 else []
    with serving(command, REPO) as (log, port):
        entries = listed(log, port, "sub")
        wanted = hashlib.sha256(files["sub/inner.bin"]).hexdigest() if sha256 else None
        assert entries["inner.bin"].get("sha256") == wanted


def test_installed_console_script_serves_a_catalog(root: Path, tmp_path: Path) -> None:
    """`acupdate-server` as pip installed it ([project.scripts]), run outside the repo."""
    script = str(Path(sys.executable).parent / "acupdate-server")
    result = subprocess.run(
        [script, "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0 and "--catalog" in result.stdout, result.stderr
    with serving([script, "-d", str(root), "-b", "127.0.0.1", "-p", "0"], tmp_path) as (
        log,
        port,
    ):
        entries = listed(log, port, ".")
        want = {"app.bin": "bin", "fake.bin": "file", "notes.txt": "file", "sub": "directory"}
        assert {name: entries.get(name, {}).get("type") for name in want} == want
