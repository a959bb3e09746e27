"""Benchmark the device agent's memory and speed (issue 10's figures).

Everything runs for real: the agent package compiled with mpy-cross as a deploy compiles it
(tools.devicepkg, through host_tests/conftest.py install_agent) on the simulated ESP32 board,
run by the MicroPython unix port, where `board.run(heap=...)` gives the application exactly
the free heap of a bare `micropython -X heapsize=<heap>`; the project's update server on
127.0.0.1 serves the catalogs and the images. Heap figures are gc.mem_alloc() inside
MicroPython (x86-64: 8-byte pointers, so an upper bound for the ESP32's 4-byte ones).

Targets (each printed with PASS/FAIL; the exit status is 1 when one fails):
  1. The promise: a complete update (catalog, download, checks, write, read-back) of a 1.5
     MiB image works at the promised heap, 48K (README), through the Updater API
     (catalog(), then update() of its one image) and the REPL flow (acupdate.repl.update()
     with no name, as a person types it), also with a 2,000-entry catalog; the flash is then
     compared byte for byte from the host.
  2. The least heap of the happy path (a benchmark figure, not the promise): the smallest
     heap from which the update works at every heap tried up to 48K (512 B steps, going
     down): at most 38K through the Updater API, 40K through the REPL flow; and flat: the
     same (+-2 KiB: the heap's layout differs) for a 0.5 and a 1.5 MiB image and for 5 and
     2,000 non-bin catalog entries.
  3. The transfer's heap growth: the live heap (after a collection) in every progress
     callback over the heap after the imports and the Config, printed; flat (+-256 B) for a
     0.5 and a 1.5 MiB image and for 5 and 2,000 entries; and the transfer loop allocates
     nothing per block beyond what the simulated flash driver allocates in writeblocks
     (Python code here, ROM on a board).
  4. Time / floor at most 1.2: the agent's transfer (HTTP client readinto -> slot writer:
     MD5 + writeblocks -> progress callback) against a floor loop (socket readinto into a
     preallocated view + MD5 + writeblocks of the same bytes from the same server, after the
     agent's own request) in the same interpreter and run, best of --rounds each, at heap
     48K and at the board's default 110K. The times cover blocks 1..N-1 (block 0 is where
     the agent checks the image); the whole times (connect to last write for the floor;
     update() with the running image's MD5 and the read-back for the agent) are printed too.

  4. Signed updates (issue 13): a 0.5 MiB image signed by `espsecure sign-data --version
     2` (an RSA-3072 key, then an ECDSA P-256 one, made for the run), the board trusting
     the key (/acupdate.json "signing", required): a complete update succeeds at heap 48K
     (the agent's promise for http), through the Updater API and the REPL flow, flash
     checked; printed: the smallest heap from which it works at every heap tried up to
     48K (1 KiB steps), next to the same image unsigned on a board without keys. Figures
     only, for the check alone: the same images written through an acupdate.ota.writer
     Writer on the board, the time of its finish() (with the check: the SHA-256 of the
     image read back, the blocks, the RSA or ECDSA arithmetic) and the smallest heap for
     the Writer and finish(), next to the unsigned image without keys.

    .venv/bin/python bench/bench_agent.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "host_tests")]

from conftest import install_agent  # noqa: E402  (the tests' installer: same mpy-cross flags)

from tools.board import Board  # noqa: E402
from tools.image import build_app  # noqa: E402
from tools.server.core import UpdateServer  # noqa: E402

KIB = 1024
MIB = 1024 * 1024
SMALL, LARGE = MIB // 2, MIB + MIB // 2  # 1.5 MiB fills the 0x180000 OTA slot exactly
FEW, MANY = 5, 2000  # non-bin catalog entries besides the image
HEAP = 48 * KIB  # the promised heap for http (README)
BOARD_HEAP = 110 * KIB  # tools.board's default: what an ESP32 without PSRAM has free
LEAST = {"Updater API": 38 * KIB, "REPL flow": 40 * KIB}  # the happy path's least heap
SAME_GROWTH = 256
SAME_MIN_HEAP = 2 * KIB  # fragmentation noise; 8 B kept per entry would be 16 KiB
STEP = 512
TOP = 48 * KIB
RATIO = 1.2  # time / floor, at most
CASES = ((SMALL, FEW), (LARGE, FEW), (LARGE, MANY))
# The agent's modules (the web pages' are bench/bench_web.py's); all but https (TLS).
MODULES = (
    "agent",
    "config",
    "settings",
    "boardconfig",
    "http.response",
    "http.client",
    "http.url",
    "download",
    "download.request",
    "download.catalog",
    "download.headers",
    "download.start",
    "download.transfer",
    "download.resume",
    "ota",
    "ota.image",
    "ota.verify",
    "ota.writer",
    "ota.slots",
    "ota.errors",
    "repl",
    "console",
    "startup",
)

# Module residency: all modules imported (total: with the names they intern, and the
# qstr pool that takes), then each one's own code and data: unloaded, imported again.
RESIDENCY = """
import gc, json
import acupdate
gc.collect()
g0 = gc.mem_alloc()
for m in %(modules)r:
    __import__("acupdate." + m)
gc.collect()
out = {"total": gc.mem_alloc() - g0}
for m in %(modules)r:
    acupdate.unload([k for k in acupdate.loaded() if k != "acupdate." + m])
    gc.collect()
    a = gc.mem_alloc()
    __import__("acupdate." + m)
    gc.collect()
    out[m] = gc.mem_alloc() - a
print(json.dumps(out))
"""

# The REPL flow as a person runs it: no name, so the catalog decides (one bin image).
REPL_FLOW = """
import acupdate.repl as r
st = r.update(url=%(url)r, reboot=False)
print("STATUS", st)
"""

# The Updater API as an application uses it, with heap probes.
UPDATER_FLOW = """
from acupdate.agent import Updater, NAMES
from acupdate.config import Config
up = Updater(Config(url=%(url)r, reboot=False))
st = up.update(up.catalog()[0].name)
print("STATUS", NAMES[st], up.error)
"""

# The Updater API with heap probes. First, how much the simulated flash driver allocates
# per writeblocks, on the target slot's last block (erased, and past the image). The
# baseline follows the imports and the Config. Then catalog() and update() twice with the
# same Updater: the first time is cold (the names of the modules a phase loads are
# interned then, and the interpreter's qstr table may grow by a whole pool at that point),
# the second time is the steady state. In every progress callback: the heap allocated
# since the previous callback (one block: agent + flash driver; the final block, partial,
# is left out), then the live heap after a collection.
MEASURE = """
import gc, json, esp32
def driver_alloc():  # in a function: its frame, and what it held, is gone after it
    p = esp32.Partition(esp32.Partition.RUNNING).get_next_update()
    ff = bytearray(b"\\xff" * 4096)
    for i in (0, 1):  # the second call: the first one also sets the driver up
        gc.collect()
        a = gc.mem_alloc()
        p.writeblocks(p.ioctl(4, None) - 1, ff)
        d = gc.mem_alloc() - a
    return d
driver = driver_alloc()
gc.collect()
g0 = gc.mem_alloc()
from acupdate.agent import Updater, NAMES
from acupdate.config import Config
cfg = Config(url=%(url)r, reboot=False)
gc.collect()
base = gc.mem_alloc()
n = live = peak = more = worst = 0
held = -1
def prog(amount, size):
    global n, live, peak, held, more, worst
    a = gc.mem_alloc()
    gc.collect()
    m = gc.mem_alloc()
    if held >= 0:  # the previous block, not the last one
        worst = max(worst, held - driver)
        if held > driver:
            more += 1
    held = a - live if n else -1
    live = m
    peak = max(peak, m)
    n += 1
up = Updater(cfg)
up.on_progress = prog
slot = esp32.Partition(esp32.Partition.RUNNING).get_next_update()
runs = []
for i in (0, 1):
    n = peak = more = worst = 0
    held = -1
    slot.ioctl(6, 0)  # its first block erased: a slot that holds the image complete is
    # not downloaded again (acupdate.ota.held), and this measures a download
    st = up.update(up.catalog()[0].name)
    runs.append([NAMES[st], up.error, peak - base, n, more, worst])
gc.collect()
print(json.dumps({"imports": base - g0, "driver": driver, "runs": runs,
    "after": gc.mem_alloc() - base}))
"""

# Floor loop and agent, alternately, timed with ticks_us. The floor sends the agent's own
# request (its headers, through its HTTP client, which also reads the reply head and the
# first block), then per 4096-byte block: socket readinto into the whole buffer (a view
# only for a short read), MD5 update, writeblocks.
THROUGHPUT = """
import gc, json, hashlib, time
from acupdate.agent import Updater, NAMES
from acupdate.config import Config
cfg = Config(url=%(url)r, reboot=False)
up = Updater(cfg)  # (its block buffer first, as the agent's users make it)
import acupdate
from acupdate.http import Url, client
from acupdate.http.response import Deadline
with acupdate.Phase():
    import acupdate.ota.slots
    import acupdate.download.headers
    part = acupdate.ota.slots.target()
    lines = acupdate.download.headers.for_download(part, up.buf)[0]

def floor(size):
    buf = up.buf
    mv = memoryview(buf)
    t0 = time.ticks_us()
    url = Url(False, cfg.host, cfg.port, cfg.image_target(%(name)r))
    r = client.request(url, [lines], mv[3070:], Deadline(60, "floor"), cfg.timeout, cfg.timeout)
    if r.status != 200 or r.length != size:
        raise OSError("floor: reply %%d, %%d bytes" %% (r.status, r.length))
    fill = r.readinto(mv)
    s = r.sock
    s.setblocking(True)  # plain blocking reads: the floor has no deadline to keep
    h = hashlib.md5()
    done = fill
    blk = 0
    t1 = 0
    while True:
        while fill < 4096 and done < size:
            if fill == 0 and size - done >= 4096:
                k = s.readinto(mv)
            else:
                k = s.readinto(mv[fill:min(4096, fill + size - done)])
            if not k:
                raise OSError("floor: body cut at %%d" %% done)
            fill += k
            done += k
        h.update(mv if fill == 4096 else mv[:fill])
        for j in range(fill, 4096):
            buf[j] = 0xFF
        part.writeblocks(blk, buf)
        blk += 1
        fill = 0
        if blk == 1:
            t1 = time.ticks_us()
        if done >= size:
            break
    t2 = time.ticks_us()
    r.close()
    return [time.ticks_diff(t2, t0), time.ticks_diff(t2, t1), size - 4096]

ticks = [0, 0]
def prog(amount, size):
    t = time.ticks_us()
    if amount <= 4096:
        ticks[0] = t
    ticks[1] = t

up.on_progress = prog
rows = []
for i in range(%(rounds)d):
    fl = floor(%(size)d)
    part.ioctl(6, 0)  # the floor's image is complete in the slot: its first block erased,
    # else the agent would not download it again (acupdate.ota.held)
    gc.collect()
    t0 = time.ticks_us()
    st = up.update(%(name)r)
    t3 = time.ticks_us()
    if NAMES[st] != "SUCCESS":
        raise OSError("agent: %%s %%s" %% (NAMES[st], up.error))
    ag = [time.ticks_diff(t3, t0), time.ticks_diff(ticks[1], ticks[0]), %(size)d - 4096]
    rows.append([fl, ag])
    gc.collect()
print(json.dumps(rows))
"""


# The signature check as acupdate.ota.writer makes it: an image on the board's file system
# written into the next slot through a Writer, then finish() (the MD5, the signature when
# /acupdate.json names trusted keys, the header, the read-back, set_boot), timed. JSON:
# finish()'s microseconds and the index of the key that signed (None: not checked).
WRITER_CHECK = """
import json, time, gc
from acupdate.ota import slots, writer
buf = bytearray(4096)
w = writer.Writer(slots.target(), %(size)d, buf)
with open("/app.bin", "rb") as f:
    while w.done < w.size:
        w.commit(f.readinto(w.room()))
gc.collect()
t = time.ticks_us()
w.finish(%(md5)r)
t = time.ticks_diff(time.ticks_us(), t)
print(json.dumps({"finish_us": t, "key": getattr(w, "key", None)}))
"""


# The signed updates of target 4: the Updater API and the REPL flow, each with the image's
# name (the catalog's shape is not what they measure).
SIGNED_FLOWS = (
    (
        "Updater API",
        """
from acupdate.agent import Updater, NAMES
from acupdate.config import Config
up = Updater(Config(url=%(url)r, reboot=False))
st = up.update("app.bin")
print("STATUS", NAMES[st], up.error)
""",
    ),
    (
        "REPL flow",
        """
import acupdate.repl as r
print("STATUS", r.update("app.bin", url=%(url)r, reboot=False))
""",
    ),
)


class Lab:
    """Images, a catalog folder per case on one update server, and fresh boards."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.running = build_app(version="1.0.0", size=1_400_000, seed=1)
        self.images = {
            SMALL: build_app(version="2.0.0", size=SMALL, seed=2),
            LARGE: build_app(version="2.0.0", size=LARGE, seed=3),
        }
        for size in (SMALL, LARGE):
            for extra in (FEW, MANY):
                folder = tmp / "catalog" / self.case(size, extra)
                folder.mkdir(parents=True)
                (folder / "app.bin").write_bytes(self.images[size])
                for i in range(extra):  # half files, half folders
                    if i % 2:
                        (folder / f"release-notes-{i:04d}.txt").write_text("notes\n")
                    else:
                        (folder / f"old-builds-{i:04d}").mkdir()
        pristine = Board.create(tmp / "pristine", self.running)
        install_agent(pristine, mpy=True)
        self.pristine = pristine.path
        self.boards = 0
        self.server = UpdateServer(tmp / "catalog").start()

    @staticmethod
    def case(size: int, extra: int) -> str:
        return f"s{size}-e{extra}"

    def url(self, size: int, extra: int) -> str:
        return f"{self.server.url.rstrip('/')}/{self.case(size, extra)}"

    def board(self) -> Board:
        """A fresh copy of the pristine board: v1 running from ota_0, agent installed."""
        self.boards += 1
        path = self.tmp / f"board{self.boards}"
        shutil.copytree(self.pristine, path)
        return Board(path)

    def flashed(self, board: Board, size: int) -> str | None:
        """None when ota_1 holds the image and boots next, else what is wrong."""
        part = board.flash.part("ota_1")
        image = self.images[size]
        if board.flash.read(part.offset, len(image)) != image:
            return "ota_1 does not hold the image"
        if board.flash.boot_partition().label != "ota_1":
            return "ota_1 is not the next boot"
        return None

    def close(self) -> None:
        self.server.stop()


def run_json(board: Board, code: str, heap: int) -> tuple[dict | list | None, str]:
    res = board.run(code, heap=heap, timeout=300)
    lines = [ln for ln in res.output.splitlines() if ln.startswith(("{", "["))]
    if res.returncode != 0 or not lines:
        return None, (res.output + res.stderr).strip()[-400:]
    return json.loads(lines[-1]), ""


def full_update(lab: Lab, flow: str, size: int, extra: int, heap: int) -> tuple[bool, str]:
    """One complete update (REPL_FLOW or UPDATER_FLOW) on a fresh board, flash checked."""
    board = lab.board()
    res = board.run(flow % {"url": lab.url(size, extra)}, heap=heap, timeout=300)
    if res.returncode != 0 or "STATUS SUCCESS" not in res.output:
        return False, (res.output + res.stderr).strip()[-300:]
    problem = lab.flashed(board, size)
    return problem is None, problem or ""


def min_heap(lab: Lab, flow: str, size: int, extra: int) -> int | None:
    """Smallest application heap from which the update works at every heap tried up to
    TOP, going down in STEP steps (success is not monotonic in the heap size: the heap's
    layout, so its fragmentation, changes with it)."""
    ok = None
    heap = TOP
    while heap >= 16 * KIB and full_update(lab, flow, size, extra, heap)[0]:
        ok = heap
        heap -= STEP
    return ok


def measure(lab: Lab, size: int, extra: int) -> tuple[dict | None, str]:
    board = lab.board()
    got, err = run_json(board, MEASURE % {"url": lab.url(size, extra)}, HEAP)
    if got is None:
        return None, err
    assert isinstance(got, dict)
    for status, error, *_ in got["runs"]:
        if status != "SUCCESS":
            return None, f"{status}: {error}"
    problem = lab.flashed(board, size)
    return (None, problem) if problem else (got, "")


def throughput(lab: Lab, heap: int, rounds: int) -> tuple[list | None, str]:
    board = lab.board()
    code = THROUGHPUT % {
        "url": lab.url(LARGE, FEW),
        "name": "app.bin",
        "size": LARGE,
        "rounds": rounds,
    }
    got, err = run_json(board, code, heap)
    if got is None:
        return None, err
    problem = lab.flashed(board, LARGE)
    return (None, problem) if problem else (got, "")  # type: ignore[return-value]


def writer_check(lab: Lab, image: bytes, keys: list, heap: int) -> dict | None:
    """WRITER_CHECK on a fresh board trusting `keys` (none: no "signing" section)."""
    import hashlib

    board = lab.board()
    (board.fs / "app.bin").write_bytes(image)
    if keys:
        cfg = {"signing": {"trusted": [k.hex for k in keys], "required": True}}
        (board.fs / "acupdate.json").write_text(json.dumps(cfg))
    code = WRITER_CHECK % {"size": len(image), "md5": hashlib.md5(image).hexdigest()}
    got, _ = run_json(board, code, heap)
    return got if isinstance(got, dict) else None


def signed_update(lab: Lab, flow: str, url: str, image: bytes, keys: list, heap: int):
    """One complete update from `url` on a fresh board trusting `keys` (none: no "signing"
    section): (True, "") when the board reports success and ota_1 holds `image`, next boot."""
    board = lab.board()
    if keys:
        cfg = {"signing": {"trusted": [k.hex for k in keys], "required": True}}
        (board.fs / "acupdate.json").write_text(json.dumps(cfg))
    res = board.run(flow % {"url": url}, heap=heap, timeout=300)
    if res.returncode != 0 or "STATUS SUCCESS" not in res.output:
        return False, (res.output + res.stderr).strip()[-300:]
    part = board.flash.part("ota_1")
    if board.flash.read(part.offset, len(image)) != image:
        return False, "ota_1 does not hold the image"
    if board.flash.boot_partition().label != "ota_1":
        return False, "ota_1 is not the next boot"
    return True, ""


def signed_updates(lab: Lab, verdict) -> list:  # type: ignore[no-untyped-def]
    from signing import make_key, sign

    print("\nSigned updates (0.5 MiB image, the board trusting the key, signatures required)")
    src = lab.tmp / "signing" / "app.bin"
    src.parent.mkdir()
    src.write_bytes(lab.images[SMALL])
    cases = [("unsigned, no keys", "plain", lab.images[SMALL], [])]
    for scheme in ("rsa3072", "ecdsa256"):
        key = make_key(src.parent, scheme, scheme)
        folder = lab.tmp / "catalog" / scheme
        folder.mkdir()
        cases.append((f"signed, {scheme}", scheme, sign(src, key.pem, folder / "app.bin"), [key]))
    (lab.tmp / "catalog" / "plain").mkdir()
    (lab.tmp / "catalog" / "plain" / "app.bin").write_bytes(lab.images[SMALL])
    for name, case, image, keys in cases:
        url = f"{lab.server.url.rstrip('/')}/{case}"
        for how, flow in SIGNED_FLOWS:
            if keys:
                ok, why = signed_update(lab, flow, url, image, keys, TOP)
                verdict(
                    f"4. {name} update at heap {TOP // KIB}K, {how}",
                    ok,
                    "flash verified, ota_1 boots next" if ok else why,
                )
            least = None
            heap = TOP
            while heap >= 24 * KIB and signed_update(lab, flow, url, image, keys, heap)[0]:
                least = heap
                heap -= KIB
            shown = f"{least} B" if least else f"fails at {TOP // KIB}K"
            print(f"  {name:<18} {how:<12} smallest heap {shown}")
    return cases


def kib(n: float) -> str:
    return f"{n / KIB:.2f} KiB"


def label(size: int, extra: int) -> str:
    return f"{size / MIB:.1f} MiB image, {extra} non-bin entries"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Measure the acupdate device agent's heap use and streaming speed on "
        "the simulated ESP32 board (real MicroPython, real update server on 127.0.0.1); "
        "prints figures and PASS/FAIL per target; exit status 1 when a target fails."
    )
    ap.add_argument("--rounds", type=int, default=5, help="throughput rounds (best counts)")
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    t_start = time.monotonic()
    results: list[tuple[str, bool, str]] = []
    with tempfile.TemporaryDirectory(prefix="acbench") as tmp:
        lab = Lab(Path(tmp))
        try:
            run(lab, args.rounds, lambda *r: results.append(r))
        finally:
            lab.close()
    print("\nTargets")
    for name, ok, detail in results:
        print(f"  {'PASS' if ok else 'FAIL'}  {name}: {detail}")
    print(f"(benchmark took {time.monotonic() - t_start:.0f} s)")
    return 0 if all(ok for _, ok, _ in results) else 1


def run(lab: Lab, rounds: int, verdict) -> None:  # type: ignore[no-untyped-def]
    res, err = run_json(lab.board(), RESIDENCY % {"modules": MODULES}, 200 * KIB)
    print("Module residency (.mpy, bytes): each module's code and data, then all with their names")
    if res is None:
        print("  could not measure:", err)
    else:
        assert isinstance(res, dict)
        for i in range(0, len(MODULES), 6):
            print("  " + "  ".join(f"{m} {res[m]}" for m in MODULES[i : i + 6]))
        print(f"  all: {res['total']} B")

    flows = ((UPDATER_FLOW, "Updater API"), (REPL_FLOW, "REPL flow"))
    # Target 1: the promise.
    for flow, name in flows:
        for size, extra in ((LARGE, FEW), (LARGE, MANY)):
            ok, why = full_update(lab, flow, size, extra, HEAP)
            verdict(
                f"1. update at the promised {HEAP // KIB}K, {name}, {label(size, extra)}",
                ok,
                "flash verified, ota_1 boots next" if ok else why,
            )

    # Target 2: the happy path's least heap.
    print(f"\nSmallest heap for a complete update, working at every heap up to {TOP // KIB}K")
    for flow, name in flows:
        need = {case: min_heap(lab, flow, *case) for case in CASES}
        for case, heap in need.items():
            shown = f"{heap} B ({heap / KIB:.1f} KiB)" if heap else f"fails at {TOP // KIB}K"
            print(f"  {name:<12} {label(*case):<36} {shown}")
        if all(need.values()):
            most = max(need.values())  # type: ignore[type-var]
            verdict(
                f"2. least heap, {name} <= {LEAST[name] // KIB}K",
                most <= LEAST[name],  # type: ignore[operator]
                f"largest of the cases {most} B",
            )
            d_size = need[LARGE, FEW] - need[SMALL, FEW]  # type: ignore[operator]
            d_cat = need[LARGE, MANY] - need[LARGE, FEW]  # type: ignore[operator]
            verdict(
                f"2. least heap flat, {name}: 0.5 vs 1.5 MiB, 5 vs 2,000 entries",
                abs(d_size) <= SAME_MIN_HEAP and abs(d_cat) <= SAME_MIN_HEAP,
                f"{d_size:+d} B and {d_cat:+d} B (limit +-{SAME_MIN_HEAP} B)",
            )
        else:
            verdict(f"2. least heap, {name}", False, f"the update failed at {TOP // KIB}K")

    # Target 3: growth during the transfer.
    print(f"\nHeap during updates (Updater API) at heap {HEAP // KIB}K, over the baseline")
    print(
        f"  {'case':<36} {'imports':>8} {'transfer':>9} {'first':>7} {'blocks':>7} "
        f"{'allocating':>11} {'driver':>7}"
    )
    growth: dict[tuple[int, int], dict] = {}
    for size, extra in CASES:
        got, err = measure(lab, size, extra)
        if got is None:
            print(f"  {label(size, extra):<36} failed: {err}")
            continue
        first, again = got["runs"]
        got.update(peak=again[2], first=first[2], blocks=again[3], more=again[4])
        growth[size, extra] = got
        print(
            f"  {label(size, extra):<36} {got['imports']:>6} B {again[2]:>7} B "
            f"{first[2]:>5} B {again[3]:>7} {again[4]:>11} {got['driver']:>5} B"
        )
    print(
        "  imports: the heap the Updater's modules take as imported; transfer: the live "
        "heap's peak\n  in the progress callbacks of a repeated update (the transfer "
        "phase's modules, the slot\n  writer, its hashes, the reply); first: the same in "
        "the first one, cold (the qstr table\n  takes a new pool when a phase's names fill "
        "the last one); allocating: blocks that\n  allocated beyond the flash driver's "
        "writeblocks"
    )
    if len(growth) == len(CASES):
        d_size = growth[LARGE, FEW]["peak"] - growth[SMALL, FEW]["peak"]
        d_cat = growth[LARGE, MANY]["peak"] - growth[LARGE, FEW]["peak"]
        f_size = growth[LARGE, FEW]["first"] - growth[SMALL, FEW]["first"]
        f_cat = growth[LARGE, MANY]["first"] - growth[LARGE, FEW]["first"]
        verdict(
            "3. transfer growth flat: 0.5 vs 1.5 MiB image, 5 vs 2,000 non-bin entries",
            max(abs(d_size), abs(d_cat), abs(f_size), abs(f_cat)) <= SAME_GROWTH,
            f"{d_size:+d} B for 3x the image, {d_cat:+d} B for 400x the entries; cold "
            f"{f_size:+d} B and {f_cat:+d} B (limit +-{SAME_GROWTH} B); largest "
            f"{kib(max(g['peak'] for g in growth.values()))}",
        )
        blocks = sum(g["blocks"] - 2 for g in growth.values())
        more = sum(g["more"] for g in growth.values())
        verdict(
            "3. no allocation per block in the transfer loop",
            more <= blocks // 10,
            f"{more} of {blocks} blocks allocated beyond the flash driver's "
            f"{growth[LARGE, FEW]['driver']} B (only a short socket read may: a view for "
            f"the rest of the block)",
        )
    else:
        verdict("3. transfer heap growth", False, "a measurement run failed (see above)")

    # Target 4: time / floor.
    print(f"\nStreaming, 1.5 MiB image, best of {rounds} (MB/s = 10^6 B/s)")
    for heap in (HEAP, BOARD_HEAP):
        rows, err = throughput(lab, heap, rounds)
        if rows is None:
            verdict(f"4. time / floor at heap {heap // KIB}K", False, err)
            continue
        for i, (fl, ag) in enumerate(rows):
            print(
                f"  heap {heap // KIB}K round {i + 1}: floor {fl[2] / fl[1]:.2f} MB/s "
                f"(connect to last write {fl[0] / 1000:.0f} ms), agent {ag[2] / ag[1]:.2f} "
                f"MB/s (update() {ag[0] / 1000:.0f} ms)"
            )
        floor = min(fl[1] for fl, _ in rows)
        agent = min(ag[1] for _, ag in rows)
        verdict(
            f"4. time / floor at heap {heap // KIB}K <= {RATIO}",
            agent <= RATIO * floor,
            f"agent {agent / 1000:.0f} ms, floor {floor / 1000:.0f} ms for the same "
            f"{rows[0][0][2]} bytes: {agent / floor:.2f}",
        )
    print_writer_check(lab, signed_updates(lab, verdict))


def print_writer_check(lab: Lab, cases: list) -> None:
    print("\nThe check in Writer.finish() (.mpy on the board), 0.5 MiB image")
    for name, _case, image, keys in cases:
        got = writer_check(lab, image, keys, 110 * KIB)
        if got is None or (keys and got["key"] != 0):
            print(f"  {name}: could not measure: {got}")
            continue
        least = None
        heap = 40 * KIB
        while heap >= 8 * KIB and writer_check(lab, image, keys, heap) is not None:
            least = heap
            heap -= 512
        print(
            f"  {name:<18} finish() {got['finish_us'] / 1000:.0f} ms; smallest heap for the "
            f"Writer and finish(): {least} B"
        )
    print("  (x86-64 unix port: heap figures are an upper bound for the ESP32, times are not)")


if __name__ == "__main__":
    sys.exit(main())
