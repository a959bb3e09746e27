"""Redirects (issue 5, Transport), run by the real MicroPython on the simulated board:
301, 302, 303, 307 and 308, with a relative, an absolute-path or an absolute Location (to
another server), at most 5 in a row; the ESP32 headers go along, the basic-auth header only
to the configured server. (https to http is refused: test_transport_https.py.)"""

from __future__ import annotations

import hashlib
import json

import pytest
from conftest import run_json
from faults import ScriptServer, image_reply, reply, run_updates

from tools.image import build_app

SIZE = 60_000
CODES = (301, 302, 303, 307, 308)


@pytest.fixture(scope="module")
def image():
    return build_app(version="2.0.0", size=SIZE, seed=11)


def moved(code: int, location: str) -> bytes:
    return reply(code, b"moved", {"Location": location})


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_every_redirect_code_and_location_form(agent_board, image):
    with ScriptServer({"/cdn/app.bin": [image_reply(image)]}) as cdn:
        script = {"/fw/moved/app.bin": [image_reply(image)], "/moved/app.bin": [image_reply(image)]}
        forms = {
            "rel": "moved/app.bin",  # relative to /fw/
            "path": "/moved/app.bin",
            "abs": f"http://127.0.0.1:{cdn.port}/cdn/app.bin#frag",
        }
        names = []
        for code in CODES:
            for form, where in forms.items():
                name = f"r{code}-{form}.bin"
                script[f"/fw/{name}"] = [moved(code, where)]
                names.append(name)
        with ScriptServer(script) as srv:
            cfg = f"url={srv.url + 'fw'!r}, reboot=False"
            got = run_updates(agent_board, cfg, [(n, {}, SIZE) for n in names])
            seen = list(srv.seen)
        cdn_seen = list(cdn.seen)
    for name, g in zip(names, got, strict=True):
        assert g["status"] == "SUCCESS" and g["md5"] == md5(image), (name, g)
    paths = [s.path for s in seen]
    assert paths.count("/fw/moved/app.bin") == len(CODES)
    assert paths.count("/moved/app.bin") == len(CODES)
    assert [s.path for s in cdn_seen] == ["/cdn/app.bin"] * len(CODES)  # no #fragment sent
    # The redirected request is the same ESP32 HTTPUpdate request.
    for s in seen + cdn_seen:
        assert s.headers["user-agent"] == "ESP32-http-Update"
        assert s.headers["x-esp32-sketch-md5"] == seen[0].headers["x-esp32-sketch-md5"]
    assert {s.headers["host"] for s in cdn_seen} == {f"127.0.0.1:{cdn.port}"}


def test_at_most_5_redirects_in_a_row(agent_board, image):
    script = {f"/hop{i}.bin": [moved(302, f"/hop{i + 1}.bin")] for i in range(6)}
    script["/hop5.bin"] = [image_reply(image)]  # 5 redirects to reach it from hop0
    script["/hop6.bin"] = [image_reply(image)]
    with ScriptServer(script) as srv:
        got = run_updates(
            agent_board,
            f"url={srv.url!r}, reboot=False",
            [("hop0.bin", {}, SIZE), ("hop0.bin", {}, SIZE)],
        )
    assert got[0]["status"] == "SUCCESS", got
    script["/hop5.bin"] = [moved(307, "/hop6.bin")]  # now 6 in a row
    with ScriptServer(script) as srv:
        (six,) = run_updates(
            agent_board, f"url={srv.url!r}, reboot=False", [("hop0.bin", {}, SIZE)]
        )
        assert len(srv.seen) == 6  # the 6th redirect is not followed
    assert six["status"] == "FAIL", six
    assert six["error"] == f"Too many redirects: more than 5, the last to {srv.url}hop6.bin"


@pytest.mark.parametrize(
    "answer, words",
    [
        (reply(302, b"x"), "Redirect (302) without a Location header"),
        (moved(301, "/a b.bin"), "Redirect to '/a b.bin': a space or control character"),
        (moved(308, "ftp://h/app.bin"), "Redirect to 'ftp://h/app.bin': not an http://"),
    ],
)
def test_bad_redirects_fail_clearly(agent_board, answer, words):
    with ScriptServer({"/app.bin": [answer]}) as srv:
        (got,) = run_updates(agent_board, f"url={srv.url!r}, reboot=False", [("app.bin", {}, 100)])
    assert got["status"] == "FAIL" and got["error"].startswith(words), got
    assert got["before"] == got["after"] == "ota_0"


def test_authorization_goes_to_the_configured_server_only(agent_board, image):
    with ScriptServer({"/cdn/app.bin": [image_reply(image)]}) as cdn:
        script = {
            "/app.bin": [moved(302, "/same/app.bin")],
            "/same/app.bin": [moved(302, f"http://127.0.0.1:{cdn.port}/cdn/app.bin")],
        }
        with ScriptServer(script) as srv:
            cfg = f"url={srv.url!r}, user='fleet', password='s3cret:x', reboot=False"
            (got,) = run_updates(agent_board, cfg, [("app.bin", {}, SIZE)])
            mine = list(srv.seen)
        theirs = list(cdn.seen)
    assert got["status"] == "SUCCESS", got
    auth = "Basic ZmxlZXQ6czNjcmV0Ong="  # base64 of fleet:s3cret:x
    assert [s.headers.get("authorization") for s in mine] == [auth, auth]
    assert "authorization" not in theirs[0].headers


def test_the_catalog_follows_redirects_too(agent_board):
    entries = [{"name": "app.bin", "type": "bin", "size": 5}]
    body = json.dumps(entries).encode()
    script = {
        "/_catalog?op=list&path=fw": [moved(301, "/mirror/_catalog?op=list&path=fw")],
        "/mirror/_catalog?op=list&path=fw": [reply(200, body)],
    }
    with ScriptServer(script) as srv:
        got, _ = run_json(
            agent_board,
            f"""
import json
from acupdate.agent import Updater
from acupdate.config import Config
print(json.dumps([[e.name, e.date, e.time, e.size] for e in
    Updater(Config(url={srv.url + "fw"!r})).catalog()]))
""",
        )
    assert got == [["app.bin", "", "", 5]]
