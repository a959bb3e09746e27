"""SHA-256 beyond MD5 (issue 5, Transport), run by the real MicroPython on the simulated
board: the server's x-SHA256 header, the catalog entry's sha256 and the caller's sha256=
(which overrides the catalog's) are checked over the whole image, chunk by chunk like the
MD5, before its header is written; a mismatch leaves nothing bootable. The project's update
server sends x-SHA256 and lists sha256 in the catalog when asked (see test_transport_https,
test_server)."""

from __future__ import annotations

import hashlib
import json

import pytest
from faults import ScriptServer, image_reply, reply, run_updates

from tools.image import build_app
from tools.server.core import UpdateServer

SIZE = 90_000


@pytest.fixture(scope="module")
def image():
    return build_app(version="2.0.0", size=SIZE, seed=19)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_sha256_from_the_header_or_the_caller(agent_board, image):
    good = sha(image)
    other = sha(b"other")
    script = {
        "/hdr.bin": [image_reply(image, **{"x-SHA256": good.upper()})],
        "/plain.bin": [image_reply(image)],
        "/badhdr.bin": [image_reply(image, **{"x-SHA256": other})],
        "/both.bin": [image_reply(image, **{"x-SHA256": good})],
        "/junk.bin": [image_reply(image, **{"x-SHA256": "12ab"})],
    }
    updates = [
        ("hdr.bin", {}, SIZE),
        ("plain.bin", {"sha256": good}, SIZE),
        ("badhdr.bin", {}, SIZE),
        ("plain.bin", {"sha256": other}, SIZE),
        ("both.bin", {"sha256": other}, SIZE),
        ("junk.bin", {}, SIZE),
        ("plain.bin", {"sha256": "xyz"}, SIZE),
    ]
    with ScriptServer(script) as srv:
        got = run_updates(agent_board, f"url={srv.url!r}, reboot=False", updates)
    ok = got[:2]
    for g in ok:
        assert g["status"] == "SUCCESS" and g["md5"] == hashlib.md5(image).hexdigest(), got
    bad = got[2:]
    assert [g["error"] for g in bad] == [
        f"SHA-256 Check Failed: image {good}, expected {other}",
        f"SHA-256 Check Failed: image {good}, expected {other}",
        f"x-SHA256 header {good} differs from the expected {other}",
        "Bad x-SHA256 header '12ab': expected 64 hex digits",
        "sha256 must be 64 hex digits, got 'xyz'",
    ]
    for g in bad:
        # The image header is held back until both hashes match: nothing bootable. Before
        # it overwrote ota_1 (which the first success made boot next), the agent pointed
        # otadata back at the running slot: the board boots ota_0, the image it runs.
        assert g["status"] == "FAIL" and g["after"] == "ota_0" and not g["header"], g


def test_sha256_of_the_update_server(agent_board, image, tmp_path):
    """UpdateServer(sha256=True) sends x-SHA256: the agent checks it against the caller's
    (a mismatch is refused before a byte is written) and the image."""
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "app.bin").write_bytes(image)
    other = sha(b"other")
    with UpdateServer(tmp_path / "c", sha256=True) as srv:
        got = run_updates(
            agent_board,
            f"url={srv.url!r}, reboot=False",
            [("app.bin", {"sha256": sha(image)}, SIZE), ("app.bin", {"sha256": other}, SIZE)],
        )
        sent = [r for r in srv.requests if r.path == "/app.bin"]
    assert got[0]["status"] == "SUCCESS", got
    assert got[1]["status"] == "FAIL", got
    assert got[1]["error"] == f"x-SHA256 header {sha(image)} differs from the expected {other}"
    assert [r.status for r in sent] == [200, 200]


# Device side of the catalog tests: for each (name, update() keyword arguments), ask the
# catalog, then update that image; report what was listed for it, the outcome, the MD5 of
# the slot written (the image's size), whether it starts with an image header, and the boot
# slot before and after.
CATALOG_UPDATES = """
import json, esp32, hashlib, binascii
from acupdate.agent import Updater, NAMES
from acupdate.config import Config
up = Updater(Config({cfg}))
def boot():
    return esp32.Partition(0).info()[4]
def written(n):
    p = esp32.Partition(esp32.Partition.RUNNING).get_next_update()
    h = hashlib.md5()
    blk = 0
    head = None
    while n > 0:
        p.readblocks(blk, up.buf)
        if head is None:
            head = up.buf[0]
        h.update(up.buf if n >= 4096 else memoryview(up.buf)[:n])
        n -= 4096
        blk += 1
    return binascii.hexlify(h.digest()).decode(), head == 0xE9
for name, kw in {updates}:
    before = boot()
    listed = [[e.name, e.size, e.sha256] for e in up.catalog() if e.name == name]
    st = up.update(name, **kw)
    md5, head = written({size})
    print(json.dumps({{"listed": listed, "status": NAMES[st], "error": up.error, "md5": md5,
        "header": head, "before": before, "after": boot()}}))
"""


def catalog_updates(board, url: str, updates: list, size: int = SIZE) -> list[dict]:
    code = CATALOG_UPDATES.format(cfg=f"url={url!r}, reboot=False", updates=updates, size=size)
    res = board.run(code, heap="110K", timeout=120)
    out = [json.loads(ln) for ln in res.output.splitlines() if ln.startswith("{")]
    if res.returncode != 0 or len(out) != len(updates):
        raise AssertionError(f"device run failed ({res.returncode}):\n{res.output}{res.stderr}")
    return out


CATALOG = "/_catalog?op=list&path=."


def entry(name: str, **extra) -> dict:
    return {"name": name, "type": "bin", "date": "d", "time": "t", "size": SIZE, **extra}


def test_sha256_from_the_catalog_and_the_caller(agent_board, image):
    """The catalog entry's sha256 is checked (the server sends no x-SHA256 at all); the
    caller's update(name, sha256=...) overrides it."""
    good, other = sha(image), sha(b"other")
    listing = [
        entry("right.bin", sha256=good),
        {"name": "notes.txt", "type": "file", "sha256": other},
        entry("wrong.bin", sha256=other),
        entry("upper.bin", sha256=good.upper()),
    ]
    script = {
        CATALOG: [reply(200, json.dumps(listing).encode(), {"Content-Type": "application/json"})],
        **{f"/{name}": [image_reply(image)] for name in ("right.bin", "wrong.bin", "upper.bin")},
    }
    updates = [
        ("wrong.bin", {}),  # the catalog's sha256 is wrong
        ("right.bin", {"sha256": other}),  # the caller's is wrong: it wins
        ("wrong.bin", {"sha256": good}),  # the caller's is right: it wins
        ("right.bin", {}),
        ("upper.bin", {}),  # hex digits in either case
    ]
    with ScriptServer(script) as srv:
        got = catalog_updates(agent_board, srv.url, updates)
        images = [s for s in srv.seen if s.path != CATALOG]
        catalogs = srv.requests(CATALOG)
    assert len(catalogs) == len(updates) and [s.path for s in images] == [
        f"/{name}" for name, _ in updates
    ]
    assert [g["listed"] for g in got] == [
        [["wrong.bin", SIZE, other]],
        [["right.bin", SIZE, good]],
        [["wrong.bin", SIZE, other]],
        [["right.bin", SIZE, good]],
        [["upper.bin", SIZE, good]],  # the catalog's hex digits, in lower case
    ]
    bad, ok = got[:2], got[2:]
    assert [g["error"] for g in bad] == [
        f"SHA-256 Check Failed: image {good}, expected {other}"
    ] * 2
    for g in bad:
        # nothing bootable, and the board still boots what it ran before
        assert g["status"] == "FAIL" and g["before"] == g["after"] == "ota_0" and not g["header"]
    md5 = hashlib.md5(image).hexdigest()
    for g in ok:
        assert g["status"] == "SUCCESS" and g["error"] == "", g
        assert g["md5"] == md5 and g["header"] and g["after"] == "ota_1", g


def test_catalog_and_header_of_the_update_server_agree(agent_board, image, tmp_path):
    """UpdateServer(sha256=True) lists the image's sha256 in the catalog and sends the same
    in x-SHA256: the update checks both and succeeds; a caller's other sha256 is refused."""
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "app.bin").write_bytes(image)
    (tmp_path / "c" / "notes.txt").write_text("not an image")
    other = sha(b"other")
    with UpdateServer(tmp_path / "c", sha256=True) as srv:
        got = catalog_updates(
            agent_board, srv.url, [("app.bin", {"sha256": other}), ("app.bin", {})]
        )
        sent = [r.status for r in srv.requests if r.path == "/app.bin"]
    listed = [g["listed"] for g in got]
    assert listed[0] == listed[1] and [e[:2] for e in listed[0]] == [["app.bin", SIZE]]
    assert listed[0][0][2] == sha(image)
    assert got[0]["status"] == "FAIL" and not got[0]["header"] and got[0]["after"] == "ota_0"
    assert got[0]["error"] == f"x-SHA256 header {sha(image)} differs from the expected {other}"
    assert got[1]["status"] == "SUCCESS" and got[1]["error"] == "", got[1]
    assert got[1]["md5"] == hashlib.md5(image).hexdigest() and got[1]["after"] == "ota_1"
    assert sent == [200, 200]
