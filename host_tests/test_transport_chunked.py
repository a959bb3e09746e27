"""Chunked transfer coding (issue 5, Transport), run by the real MicroPython on the
simulated board: an image without Content-Length is installed only when its size is known
(the catalog's entry, or update(size=)) and its length is exactly that; a chunked catalog
is read as any other."""

from __future__ import annotations

import hashlib
import json

import pytest
from conftest import install_agent, run_json
from faults import ScriptServer, chunked_reply, cut, partial_reply, reply, run_updates

from tools.image import build_app

SIZE = 150_000


@pytest.fixture(scope="module")
def image():
    return build_app(version="2.0.0", size=SIZE, seed=9)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def catalog(entries) -> bytes:
    body = json.dumps(entries).encode()
    return reply(200, body, {"Content-Type": "application/json"})


def chunked_catalog(entries, size=7) -> bytes:
    body = json.dumps(entries).encode()
    return chunked_reply(body, (size, 1, 300), **{"Content-Type": "application/json"})


def cfg(srv, **kw) -> str:
    args = {"url": srv.url, "timeout": 1, "backoff": 0.05, "reboot": False, **kw}
    return ", ".join(f"{k}={v!r}" for k, v in args.items())


def test_chunked_image_with_the_size_given_installs(agent_board, image):
    script = {
        "/odd.bin": [chunked_reply(image, (1, 4095, 4097, 333))],
        "/big.bin": [chunked_reply(image, (65536,))],
    }
    with ScriptServer(script) as srv:
        got = run_updates(
            agent_board,
            cfg(srv),
            [("odd.bin", {"size": SIZE}, SIZE), ("big.bin", {"size": SIZE}, SIZE)],
        )
    for g in got:
        assert g["status"] == "SUCCESS" and g["md5"] == md5(image) and g["top"] == SIZE, got


def test_chunked_image_without_a_known_size_is_refused(agent_board, image):
    """No Content-Length and no size given: the catalog is asked for the entry's size (this
    server has no catalog): nothing is written."""
    with ScriptServer({"/app.bin": [chunked_reply(image)]}) as srv:
        (got,) = run_updates(agent_board, cfg(srv), [("app.bin", {}, SIZE)])
    assert got["status"] == "FAIL", got
    assert got["error"] == (
        "Server Did Not Report Size for app.bin (no Content-Length), and its catalog entry "
        f"cannot be read: Update server responds (404) to the catalog query for {srv.url}"
    )
    assert got["before"] == got["after"] == "ota_0"
    slot = agent_board.flash.part("ota_1")
    assert agent_board.flash.read(slot.offset, 4096) == b"\xff" * 4096  # nothing written


def test_chunked_length_must_equal_the_size(agent_board, image):
    script = {
        "/short.bin": [chunked_reply(image[:-100])],  # ends early, cleanly
        "/long.bin": [chunked_reply(image + b"\x00" * 100)],
    }
    with ScriptServer(script) as srv:
        got = run_updates(
            agent_board,
            cfg(srv),
            [("short.bin", {"size": SIZE}, SIZE), ("long.bin", {"size": SIZE}, SIZE)],
        )
    short, long = got
    assert short["status"] == "FAIL", got
    assert short["error"] == (
        f"Image is {SIZE - 100} bytes, the catalog lists {SIZE}: chunked body ended early"
    )
    assert long["status"] == "FAIL", got
    assert long["error"] == f"The server sends more than the catalog's {SIZE} bytes"
    for g in got:
        assert g["before"] == g["after"] == "ota_0" and not g["header"], got


def test_a_content_length_wins_over_the_size_given(agent_board, image):
    full = reply(200, image, {"x-MD5": md5(image)})
    with ScriptServer({"/app.bin": [full]}) as srv:
        (got,) = run_updates(agent_board, cfg(srv), [("app.bin", {"size": SIZE + 999}, SIZE)])
    assert got["status"] == "SUCCESS" and got["md5"] == md5(image) and got["top"] == SIZE, got


def test_a_chunked_download_cut_inside_a_chunk_is_resumed(agent_board, image):
    body = chunked_reply(image, (5000,))
    at = body.index(b"\r\n\r\n") + 4 + 60_000  # inside a chunk
    # What the agent got by then: the image bytes before that point of the coding.
    script = {
        "/app.bin": [
            cut(body, at),
            lambda c, s, st: c.sendall(partial_reply(image, int(s.range[6:-1]))),
        ]
    }
    with ScriptServer(script) as srv:
        (got,) = run_updates(agent_board, cfg(srv), [("app.bin", {"size": SIZE}, SIZE)])
        ranges = [s.range for s in srv.requests("/app.bin")]
    assert got["status"] == "SUCCESS" and got["md5"] == md5(image), got
    assert ranges[0] is None and ranges[1].startswith("bytes=")
    start = int(ranges[1][6:-1])
    assert 0 < start < 60_000


def test_update_after_catalog_takes_the_size_it_listed(agent_board, image):
    """The Updater keeps its last catalog() list for update(name): a chunked image is
    installed with the size the catalog gave; for a name it did not list, the catalog is
    asked again, and does not list it either."""
    entries = [
        {"name": "app.bin", "type": "bin", "date": "d", "time": "t", "size": SIZE},
        {"name": "notes.txt", "type": "file"},
    ]
    script = {
        "/_catalog?op=list&path=.": [chunked_catalog(entries)],
        "/app.bin": [chunked_reply(image)],
        "/other.bin": [chunked_reply(image)],
    }
    with ScriptServer(script) as srv:
        got, _ = run_json(
            agent_board,
            f"""
import json
from acupdate.agent import Updater, NAMES
from acupdate.config import Config
up = Updater(Config({cfg(srv)}))
names = [e.name for e in up.catalog()]
a = NAMES[up.update("app.bin")]
up.catalog()
b = [NAMES[up.update("other.bin")], up.error]
print(json.dumps([names, a, b]))
""",
        )
    assert got == [
        ["app.bin"],
        "SUCCESS",
        [
            "FAIL",
            "Server Did Not Report Size for other.bin (no Content-Length), and the catalog "
            f"of {srv.url} does not list it",
        ],
    ]


def test_repl_update_installs_a_chunked_image_the_catalog_lists(agent_board, image):
    entries = [{"name": "app.bin", "type": "bin", "date": "d", "time": "t", "size": SIZE}]
    script = {
        "/_catalog?op=list&path=.": [chunked_catalog(entries, 3)],
        "/app.bin": [chunked_reply(image, (999,))],
    }
    with ScriptServer(script) as srv:
        res = agent_board.run(
            f"import acupdate.repl as r\nr.update(url={srv.url!r}, reboot=False, quiet=True)\n"
        )
    assert "Update successful: app.bin" in res.output, res.output + res.stderr
    slot = agent_board.flash.part("ota_1")
    assert agent_board.flash.read(slot.offset, SIZE) == image


def test_chunked_catalog_is_read_like_any_other(board):
    install_agent(board, mpy=True)  # at a 40K heap, as the board runs it
    entries = [{"name": f"fw-{i}.bin", "type": "BIN", "size": i} for i in range(30)]
    entries += [{"name": "dir", "type": "directory"}]
    with ScriptServer({"/_catalog?op=list&path=.": [chunked_catalog(entries, 5)]}) as srv:
        got, _ = run_json(
            board,
            f"""
import json
from acupdate.agent import Updater
from acupdate.config import Config
print(json.dumps([[e.name, e.date, e.time, e.size] for e in
    Updater(Config(url={srv.url!r})).catalog()]))
""",
            heap="48K",
        )
    assert got == [[f"fw-{i}.bin", "", "", i] for i in range(30)]
