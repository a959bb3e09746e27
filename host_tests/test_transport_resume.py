"""Resume of a dropped image download (issue 5, Transport), run by the real MicroPython on
the simulated board against scripted servers on 127.0.0.1: the agent asks for
`Range: bytes=<first byte not yet written>-` (the start of the block the drop came in),
continues on a 206 with the matching
Content-Range, starts over on a 200, fails clearly on anything else, gives up after
`retries` tries spaced by a doubling backoff, and never writes more than the image."""

from __future__ import annotations

import hashlib

import pytest
from conftest import install_agent
from faults import (
    ScriptServer,
    cut,
    image_reply,
    partial_reply,
    reply,
    reset_after,
    run_updates,
    stall_after,
)

from tools.image import build_app

SIZE = 300_000
BLOCK = 4096
AT = 24 * BLOCK  # the byte at which the first reply is cut (a block's start)


@pytest.fixture(scope="module")
def image():
    return build_app(version="2.0.0", size=SIZE, seed=5)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def cfg(srv, **kw) -> str:
    args = {"url": srv.url, "timeout": 1, "backoff": 0.05, "reboot": False, **kw}
    return ", ".join(f"{k}={v!r}" for k, v in args.items())


def head_len(data: bytes) -> int:
    return data.index(b"\r\n\r\n") + 4


def test_cut_mid_image_resumes_with_range_and_writes_the_exact_image(agent_board, image):
    full = image_reply(image)
    script = {"/app.bin": [cut(full, head_len(full) + AT), partial_reply(image, AT)]}
    with ScriptServer(script) as srv:
        (got,) = run_updates(agent_board, cfg(srv), [("app.bin", {}, SIZE)])
        seen = srv.requests("/app.bin")
    assert got["status"] == "SUCCESS", got
    assert got["md5"] == md5(image) and got["header"] and got["after"] == "ota_1"
    assert got["top"] == SIZE  # never more than the image
    assert [s.range for s in seen] == [None, f"bytes={AT}-"]
    # The resume is the same ESP32 HTTPUpdate request (the server's identity check).
    assert seen[1].headers["user-agent"] == "ESP32-http-Update"
    assert seen[1].headers["x-esp32-sketch-md5"] == seen[0].headers["x-esp32-sketch-md5"]
    slot = agent_board.flash.part("ota_1")
    assert agent_board.flash.read(slot.offset, SIZE) == image


def test_a_partial_block_at_the_drop_is_asked_for_again(agent_board, image):
    # Cut inside a block: its bytes were not written yet, so the resume asks for the block
    # from its start (the block buffer then takes the reply's head: no extra buffer).
    at = 5 * BLOCK + 3500
    full = image_reply(image)
    script = {"/app.bin": [cut(full, head_len(full) + at), partial_reply(image, 5 * BLOCK)]}
    with ScriptServer(script) as srv:
        (got,) = run_updates(agent_board, cfg(srv), [("app.bin", {}, SIZE)])
        seen = srv.requests("/app.bin")
    assert got["status"] == "SUCCESS" and got["md5"] == md5(image), got
    assert [s.range for s in seen] == [None, f"bytes={5 * BLOCK}-"]
    slot = agent_board.flash.part("ota_1")
    assert agent_board.flash.read(slot.offset, SIZE) == image


def test_200_to_the_range_request_starts_over_from_byte_0(agent_board, image):
    full = image_reply(image)
    script = {"/app.bin": [cut(full, head_len(full) + AT), full]}
    with ScriptServer(script) as srv:
        (got,) = run_updates(agent_board, cfg(srv), [("app.bin", {}, SIZE)])
        seen = srv.requests("/app.bin")
    assert got["status"] == "SUCCESS" and got["md5"] == md5(image), got
    assert got["top"] == SIZE
    assert [s.range for s in seen] == [None, f"bytes={AT}-"]


def test_start_over_that_drops_again_leaves_nothing_bootable(agent_board, image):
    full = image_reply(image)
    script = {"/app.bin": [cut(full, head_len(full) + AT), cut(full, head_len(full) + 50_000)]}
    with ScriptServer(script) as srv:
        (got,) = run_updates(agent_board, cfg(srv, retries=2), [("app.bin", {}, SIZE)])
        seen = srv.requests("/app.bin")
    assert got["status"] == "FAIL", got
    assert "gave up after 2 retries" in got["error"]
    assert got["before"] == got["after"] == "ota_0"
    assert not got["header"]  # the slot's image header was never written
    # After the start over (a 200), the next try asks from the block where the new reply
    # dropped (50,000 is inside block 12).
    assert [s.range for s in seen] == [None, f"bytes={AT}-", f"bytes={12 * BLOCK}-"]
    assert agent_board.flash.image_problem(agent_board.flash.part("ota_1"))


@pytest.mark.parametrize(
    "second, words",
    [
        (
            lambda img: reply(206, img[AT:], {"Content-Range": f"bytes 0-{SIZE - AT - 1}/{SIZE}"}),
            f"Resume refused: Content-Range 'bytes 0-{SIZE - AT - 1}/{SIZE}', "
            f"expected 'bytes {AT}-{SIZE - 1}/{SIZE}'",
        ),
        (
            lambda img: reply(206, img[AT:]),
            "Resume refused: Content-Range None, expected",
        ),
        (
            lambda img: reply(416, b"", {"Content-Range": f"bytes */{SIZE}"}),
            f"Resume refused: the server answered 416 to Range: bytes={AT}-",
        ),
        (
            lambda img: partial_reply(img, AT, **{"x-MD5": md5(b"another image")}),
            "Resume refused: the image changed on the server",
        ),
        (lambda img: reply(404, b"gone"), "Resume refused: the server answered 404"),
    ],
)
def test_a_resume_reply_that_does_not_continue_the_image_fails(agent_board, image, second, words):
    full = image_reply(image)
    script = {"/app.bin": [cut(full, head_len(full) + AT), second(image)]}
    with ScriptServer(script) as srv:
        (got,) = run_updates(agent_board, cfg(srv), [("app.bin", {}, SIZE)])
        assert len(srv.requests("/app.bin")) == 2  # refused at once, no further try
    assert got["status"] == "FAIL" and words in got["error"], got
    assert got["before"] == got["after"] == "ota_0" and not got["header"]


def test_retries_are_bounded_and_spaced_by_a_doubling_backoff(agent_board, image):
    full = image_reply(image)
    script = {"/app.bin": [cut(full, head_len(full) + AT)] * 2}  # every try drops
    with ScriptServer(script) as srv:
        got = run_updates(agent_board, cfg(srv, retries=3, backoff=0.2), [("app.bin", {}, SIZE)])[0]
        seen = srv.requests("/app.bin")
    assert got["status"] == "FAIL", got
    assert got["error"].startswith(f"Connection dropped at byte {AT} of {SIZE} (body cut short")
    assert got["error"].endswith("; gave up after 3 retries")
    assert len(seen) == 4
    gaps = [b.at - a.at for a, b in zip(seen, seen[1:], strict=False)]
    for gap, wait in zip(gaps, (0.2, 0.4, 0.8), strict=True):
        assert gap >= wait, gaps


def test_no_retry_when_retries_is_0(agent_board, image):
    full = image_reply(image)
    with ScriptServer({"/app.bin": [cut(full, head_len(full) + AT)]}) as srv:
        (got,) = run_updates(agent_board, cfg(srv, retries=0), [("app.bin", {}, SIZE)])
        assert len(srv.requests("/app.bin")) == 1
    assert got["status"] == "FAIL" and "gave up after 0 retries" in got["error"], got


def test_read_timeout_and_reset_are_resumed(agent_board, image):
    full = image_reply(image)
    h = head_len(full)
    script = {
        "/stall.bin": [stall_after(full[: h + AT]), lambda c, s, st: c.sendall(part(s))],
        "/reset.bin": [reset_after(full[: h + AT]), lambda c, s, st: c.sendall(part(s))],
    }

    def part(seen):
        return partial_reply(image, int(seen.range[6:-1]))

    with ScriptServer(script) as srv:
        got = run_updates(
            agent_board,
            cfg(srv, timeout=0.5),
            [("stall.bin", {}, SIZE), ("reset.bin", {}, SIZE)],
        )
        ranges = {p: [s.range for s in srv.requests(p)] for p in ("/stall.bin", "/reset.bin")}
    for g in got:
        assert g["status"] == "SUCCESS" and g["md5"] == md5(image) and g["top"] == SIZE, got
    # A stall: every byte that came before it was handed out, the resume asks for the
    # next one. A reset may take with it what the kernel had not handed out yet.
    assert ranges["/stall.bin"] == [None, f"bytes={AT}-"], ranges
    r = ranges["/reset.bin"]
    assert r[0] is None and len(r) == 2, r
    assert AT - 65536 < int(r[1][6:-1]) <= AT, r


def test_a_drop_inside_the_first_block_starts_over(agent_board, image):
    full = image_reply(image)
    script = {"/app.bin": [cut(full, head_len(full) + 1000), full]}
    with ScriptServer(script) as srv:
        (got,) = run_updates(agent_board, cfg(srv), [("app.bin", {}, SIZE)])
        seen = srv.requests("/app.bin")
    assert got["status"] == "SUCCESS" and got["md5"] == md5(image), got
    # Before the first block is checked nothing is kept: a plain request again.
    assert [s.range for s in seen] == [None, None]


def test_extra_bytes_in_a_206_are_not_written(agent_board, image):
    full = image_reply(image)
    n = len(image)
    more = reply(
        206,
        image[AT:] + b"\x00" * 5000,
        {"Content-Range": f"bytes {AT}-{n - 1}/{n}", "Content-Length": n - AT},
        length=False,
    )
    with ScriptServer({"/app.bin": [cut(full, head_len(full) + AT), more]}) as srv:
        (got,) = run_updates(agent_board, cfg(srv), [("app.bin", {}, SIZE + 8192)])
    assert got["status"] == "SUCCESS" and got["top"] == SIZE, got
    slot = agent_board.flash.part("ota_1")
    assert agent_board.flash.read(slot.offset + SIZE, 4096) == b"\xff" * 4096


PROMISED = "48K"  # the agent's promised heap for http (README)
TIGHT = "40K"  # room for a plain update, not for a resume's code besides it


def test_resume_heap_updater_api(board, image):
    """A resume loads its request's code (acupdate.download.resume, .request and
    acupdate.http.client) next to the transfer's. A partial block at the drop is asked for
    again, so that the reply's head goes through the block buffer as a first reply's does
    (no buffer of its own). At the promised heap (48K) the resumed update works; in a heap
    that has no room for the resume's code it fails with a clear error and leaves nothing
    bootable."""
    install_agent(board, mpy=True)
    full = image_reply(image)
    at = AT + 1234  # inside a block: the resume asks for it from AT
    got = {}
    for heap in (PROMISED, TIGHT):
        with ScriptServer(
            {"/app.bin": [cut(full, head_len(full) + at), partial_reply(image, AT)]}
        ) as srv:
            (got[heap],) = run_updates(board, cfg(srv), [("app.bin", {}, SIZE)], heap=heap)
            ranges = [s.range for s in srv.requests("/app.bin")]
        assert ranges == ([None, f"bytes={AT}-"] if heap == PROMISED else [None]), (heap, ranges)
    assert got[PROMISED]["status"] == "SUCCESS" and got[PROMISED]["md5"] == md5(image), got
    tight = got[TIGHT]
    assert tight["status"] == "FAIL", got
    assert tight["error"].startswith(f"Connection dropped at byte {AT} of {SIZE}"), tight
    assert tight["error"].endswith("the heap has no room to resume"), tight
    assert tight["after"] == tight["before"] and not tight["header"]
