"""Timeouts and limits (issue 5, Transport), run by the real MicroPython on the simulated
board: a connect timeout (a server whose accept queue is full), the read timeout, and the
whole update's deadline, which a drip-feeding server (one byte per second, in the head or
in the body) cannot outlive; the settings that bound them are checked."""

from __future__ import annotations

import select
import socket
import time

import pytest
from conftest import run_json
from faults import ScriptServer, drip, image_reply, run_updates

from tools.image import build_app

SIZE = 60_000


@pytest.fixture(scope="module")
def image():
    return build_app(version="2.0.0", size=SIZE, seed=17)


@pytest.fixture
def full_backlog():
    """A listening port that takes no more connections: backlog 0, its queue filled."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    port = srv.getsockname()[1]
    fillers = []
    for _ in range(3):
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex(("127.0.0.1", port))
        fillers.append(c)
    # Wait until the queue holds a completed connection (the others stay half open).
    # (poll, not select: select() refuses descriptors past 1023, which a long run may use)
    poller = select.poll()
    for c in fillers:
        poller.register(c, select.POLLOUT)
    assert poller.poll(5000), "no connection completed: cannot fill the accept queue"
    yield port
    for c in fillers:
        c.close()
    srv.close()


def test_connect_timeout(agent_board, full_backlog):
    port = full_backlog
    t0 = time.monotonic()
    got, _ = run_json(
        agent_board,
        f"""
import json
from acupdate.agent import Updater, NAMES
from acupdate.config import Config
up = Updater(Config(url="http://127.0.0.1:{port}/", connect_timeout=1, timeout=30))
st = up.update("app.bin")
print(json.dumps([NAMES[st], up.error]))
""",
    )
    elapsed = time.monotonic() - t0
    assert got == ["FAIL", f"Cannot connect to 127.0.0.1:{port} (ETIMEDOUT)"]
    assert elapsed < 25  # the 1 s connect timeout ended it, not the 30 s read timeout


def test_a_drip_fed_body_ends_at_the_deadline(agent_board, image):
    full = image_reply(image)
    head = full.index(b"\r\n\r\n") + 4 + 10_000
    with ScriptServer({"/app.bin": [drip(full, head, 1.0)]}) as srv:
        t0 = time.monotonic()
        (got,) = run_updates(
            agent_board,
            f"url={srv.url!r}, timeout=5, deadline=3, backoff=0.05, reboot=False",
            [("app.bin", {}, SIZE)],
        )
        elapsed = time.monotonic() - t0
        assert len(srv.seen) == 1  # no retry once the deadline has passed
    assert got["status"] == "FAIL", got
    # 10,000 bytes came at once, then one a second: 1 or 2 more before the deadline; two
    # whole blocks of them were written, the rest is asked for again by a resume.
    assert got["error"] == f"Update deadline of 3 s passed with 8192 of {SIZE} bytes written", got
    assert got["before"] == got["after"] == "ota_0" and not got["header"]
    assert elapsed < 15  # not the 5 s read timeout per byte


def test_a_drip_fed_head_ends_at_the_deadline(agent_board, image):
    full = image_reply(image)
    with ScriptServer({"/app.bin": [drip(full, 10, 1.0)]}) as srv:
        (got,) = run_updates(
            agent_board,
            f"url={srv.url!r}, timeout=5, deadline=2, reboot=False",
            [("app.bin", {}, SIZE)],
        )
    assert got["status"] == "FAIL", got
    assert got["error"] == "reading the reply failed (the update's deadline of 2 s passed)", got


def test_a_stall_is_a_read_timeout(agent_board, image):
    full = image_reply(image)
    with ScriptServer({"/app.bin": [drip(full, 10_000, 30.0)]}) as srv:
        (got,) = run_updates(
            agent_board,
            f"url={srv.url!r}, timeout=0.5, retries=1, backoff=0.05, reboot=False",
            [("app.bin", {}, SIZE)],
        )
    assert got["status"] == "FAIL", got
    assert got["error"].startswith("Connection dropped at byte "), got
    assert "(ETIMEDOUT)" in got["error"] and got["error"].endswith("; gave up after 1 retries")


def test_transport_settings_are_checked(agent_board):
    got, _ = run_json(
        agent_board,
        """
import json
from acupdate.config import Config
out = []
for kw in ({"deadline": 0}, {"deadline": "600"}, {"connect_timeout": -1}, {"retries": -1},
           {"retries": 1.5}, {"backoff": -0.1}, {"timeout": 2},
           {"deadline": 30, "retries": 0, "backoff": 0, "connect_timeout": 2}):
    try:
        c = Config("h", **kw)
        out.append([c.timeout, c.connect_timeout, c.deadline, c.retries, c.backoff])
    except ValueError as e:
        out.append(str(e))
try:
    Config.from_dict({"url": "http://h/", "dead_line": 5})
except ValueError as e:
    out.append(str(e))
print(json.dumps(out))
""",
    )
    assert got[:6] == [
        "deadline must be > 0 seconds, got 0",
        "deadline must be > 0 seconds, got '600'",
        "connect_timeout must be > 0 seconds, got -1",
        "retries must be a count >= 0, got -1",
        "retries must be a count >= 0, got 1.5",
        "backoff must be >= 0 seconds, got -0.1",
    ]
    assert got[6] == [2, 2, 600, 3, 0.5]  # connect_timeout follows timeout; the defaults
    assert got[7] == [8, 2, 30, 0, 0]
    assert got[8].startswith("unknown update setting 'dead_line' (known: host, port, path,")
