"""Measure the heap the board's web pages need, against README's promise: 64 KiB for every
flow, hostile clients included (issue 12; issue 6's 48K for the upload and the menu held
before the server bounded each connection's cost: its buffer pool and the names interned at
the start now need about 58K before the first request).

For each application heap given, on a fresh simulated board run by the real MicroPython
(`board.start(heap=...)`, as the tests do): the upload flow (POST /update of a 1.5 MiB image
as a browser's form sends it) and the UPDATE menu flow (GET /_ac/update, POST
/_ac/update_act, /_ac/update_progress polled until the end, /_ac/update_result) against the
project's update server on 127.0.0.1; and the hostile clients (basic auth on): every failed
request of test_web_hostile's CASES, 10 idle connections, 100 concurrent GET /, a slow client
while others are served, a cut upload, each followed by an authenticated GET / that must get
its 200 at once (after the cut upload, the upload form's page too), then an upload that must
boot. `--rounds` times each. Prints, per heap and
flow, whether it completed with the image set to boot next, else what the board said (for
the hostile flow: the first case after which the next request failed); then, per flow, the
smallest heap from which every larger heap tried worked in every round (the heap's layout
varies with the timing, hence rounds). Exit status 1 when a flow fails at the promised heap
(64K).

    .venv/bin/python bench/bench_web.py [--heaps 44K,48K,52K] [--rounds 3] [--flows hostile]
"""

from __future__ import annotations

import argparse
import http.client
import socket
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "host_tests")]

from test_web_device import BOUNDARY, WebBoard, big_image, form  # noqa: E402  (the tests')
from test_web_hostile import AUTH, CASES, exchange, slow_get  # noqa: E402

from tools.board import Board  # noqa: E402
from tools.board.board import heap_bytes  # noqa: E402
from tools.image import build_app  # noqa: E402
from tools.server.core import UpdateServer  # noqa: E402

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
TARGET = {"upload": "64K", "UPDATE menu": "64K", "hostile": "64K"}  # README's promise


def fresh(tmp: Path, name: str) -> Board:
    return Board.create(tmp / name, build_app(version="1.0.0", size=200_000, seed=1))


def upload(tmp: Path, heap: str, n: int) -> str:
    try:
        wb = WebBoard(fresh(tmp, f"up{heap}-{n}"), heap=heap)
    except AssertionError:
        return "the web server did not start"
    try:
        st, _, page = wb.upload(big_image(), "app-v2.bin")
        if st == 200 and b"Update successful" in page:
            return "ok"
        return f"{st}: {page[-160:]!r}"
    except OSError as e:
        return f"{type(e).__name__}: {e}"
    finally:
        out = wb.stop().output
        if "request failed" in out:
            print("   ", out.strip().splitlines()[-1])


def menu(tmp: Path, heap: str, n: int, url: str) -> str:
    try:
        wb = WebBoard(fresh(tmp, f"menu{heap}-{n}"), heap=heap, update_server=url)
    except AssertionError:
        return "the web server did not start"
    try:
        st, _, page = wb.request("GET", "/_ac/update")
        if st != 200 or b"app-v2.bin" not in page:
            return f"catalog page {st}: {page[-160:]!r}"
        st, _, page = wb.request("POST", "/_ac/update_act", b"bin=app-v2.bin", FORM)
        if st != 200:
            return f"install request {st}: {page[-160:]!r}"
        end = time.monotonic() + 60
        p: dict = {}
        while time.monotonic() < end:
            p = wb.progress()
            if p["status"] in ("SUCCESS", "FAIL", "NOAVAIL"):
                break
            time.sleep(0.05)  # the progress page's polling period
        return "ok" if p.get("status") == "SUCCESS" else f"install: {p}"
    except OSError as e:
        return f"{type(e).__name__}: {e}"
    finally:
        wb.stop()


def _get(port: int, path: str = "/") -> int | str:
    # One authenticated GET, not retried: its status, or the error's name.
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request("GET", path, headers=AUTH)
        r = c.getresponse()
        r.read()
        return r.status
    except OSError as e:
        return type(e).__name__
    finally:
        c.close()


def _tried(port: int, data: bytes | None) -> None:
    try:
        exchange(port, data)
    except OSError:  # reset past the connection limit
        pass


def _cut_upload(port: int) -> None:
    body = form([("firmware", "cut.bin", big_image())])
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = (
        f"POST /update HTTP/1.1\r\nAuthorization: {AUTH['Authorization']}\r\nContent-Type: "
        f"multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    s.sendall(head.encode() + body[:100_000])
    s.close()


def hostile(tmp: Path, heap: str, n: int) -> str:
    from concurrent.futures import ThreadPoolExecutor

    try:
        wb = WebBoard(fresh(tmp, f"hostile{heap}-{n}"), heap=heap, user="admin", password="s3cret")
    except AssertionError:
        return "the web server did not start"
    port = wb.port
    try:
        for name, data in CASES.items():
            _tried(port, data)
            if (st := _get(port)) != 200:
                return f"after {name}: {st}"
        idle = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(10)]
        st = _get(port)
        for s in idle:
            s.close()
        if st != 200:
            return f"after 10 idle connections: {st}"
        with ThreadPoolExecutor(100) as pool:
            list(pool.map(lambda _: _tried(port, b"GET / HTTP/1.1\r\n\r\n"), range(100)))
        if (st := _get(port)) != 200:
            return f"after 100 concurrent requests: {st}"
        with ThreadPoolExecutor(2) as pool:
            slow = pool.submit(slow_get, port, 0.05)
            sts = [_get(port) for _ in range(3)]
            if not slow.result().startswith(b"HTTP/1.1 200") or sts != [200] * 3:
                return f"with a slow client: {sts}"
        _cut_upload(port)
        wb.wait_progress(lambda p: p["status"] == "FAIL", auth=AUTH)
        if (st := _get(port)) != 200:
            return f"after a cut upload: {st}"
        if (st := _get(port, "/update")) != 200:  # the longest page, from a heap in pieces
            return f"the upload form after a cut upload: {st}"
        st, _, page = wb.upload(big_image(), "app-v2.bin", auth=AUTH)
        if st != 200 or b"Update successful" not in page:
            return f"the upload after them: {st}: {page[-160:]!r}"
        if wb.running.wait(30).reset != "hard":
            return "no restart after the upload"
        return "ok"
    except (OSError, AssertionError) as e:
        return f"{type(e).__name__}: {str(e)[:160]}"
    finally:
        wb.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--heaps", default="40K,44K,48K,52K,56K,60K,64K", help="application heaps to try"
    )
    ap.add_argument("--rounds", type=int, default=1, help="fresh boards per heap and flow")
    ap.add_argument("--flows", default="upload,menu,hostile", help="flows to run")
    a = ap.parse_args(argv)
    heaps = a.heaps.split(",")
    flows = [
        f
        for f in (("upload", upload), ("UPDATE menu", menu), ("hostile", hostile))
        if f[0].split()[-1] in a.flows.split(",")
    ]
    failed_at_target = False
    worked: dict = {}
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        cat = tmp / "catalog"
        cat.mkdir()
        (cat / "app-v2.bin").write_bytes(big_image())
        with UpdateServer(cat) as srv:
            for heap in heaps:
                for flow, run in flows:
                    oks = 0
                    for n in range(a.rounds):
                        got = run(tmp, heap, n, srv.url) if run is menu else run(tmp, heap, n)
                        print(f"  heap {heap:>4}  {flow:<12} {got}")
                        oks += got == "ok"
                    worked.setdefault(flow, []).append((heap, oks == a.rounds))
                    failed_at_target |= heap == TARGET[flow] and oks < a.rounds
    for flow, rows in worked.items():
        # the smallest heap tried from which every larger one tried worked every time
        low = None
        for heap, ok in sorted(rows, key=lambda r: -heap_bytes(r[0])):
            if not ok:
                break
            low = heap
        print(f"{flow}: works from {low or '(none tried)'} ({a.rounds} round(s) each)")
    return 1 if failed_at_target else 0


if __name__ == "__main__":
    sys.exit(main())
