"""Measure the heap the board's web pages need (issue 6: "both work under micropython
-X heapsize=48K with a 1.5 MiB image").

For each application heap given, on a fresh simulated board run by the real MicroPython
(`board.start(heap=...)`, as the tests do): the upload flow (POST /update of a 1.5 MiB image
as a browser's form sends it) and the UPDATE menu flow (GET /_ac/update, POST
/_ac/update_act, /_ac/update_progress polled until the end, /_ac/update_result) against the
project's update server on 127.0.0.1, `--rounds` times. Prints, per heap and flow, whether
it completed with the image set to boot next, else what the board said; then, per flow, the
smallest heap from which every larger heap tried worked in every round (the heap's layout
varies with the timing, hence rounds). Exit status 1 when a flow fails at 48K.

    .venv/bin/python bench/bench_web.py [--heaps 44K,48K,52K] [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "host_tests")]

from test_web_device import WebBoard, big_image  # noqa: E402  (the tests' board driver)

from tools.board import Board  # noqa: E402
from tools.board.board import heap_bytes  # noqa: E402
from tools.image import build_app  # noqa: E402
from tools.server.core import UpdateServer  # noqa: E402

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
TARGET = "48K"


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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--heaps", default="40K,42K,44K,46K,48K,52K", help="application heaps to try")
    ap.add_argument("--rounds", type=int, default=1, help="fresh boards per heap and flow")
    a = ap.parse_args(argv)
    heaps = a.heaps.split(",")
    failed_at_target = False
    worked: dict = {}
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        cat = tmp / "catalog"
        cat.mkdir()
        (cat / "app-v2.bin").write_bytes(big_image())
        with UpdateServer(cat) as srv:
            for heap in heaps:
                for flow, run in (("upload", upload), ("UPDATE menu", menu)):
                    oks = 0
                    for n in range(a.rounds):
                        got = run(tmp, heap, n) if flow == "upload" else run(tmp, heap, n, srv.url)
                        print(f"  heap {heap:>4}  {flow:<12} {got}")
                        oks += got == "ok"
                    worked.setdefault(flow, []).append((heap, oks == a.rounds))
                    failed_at_target |= heap == TARGET and oks < a.rounds
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
