"""Fault-injection campaign: 240 seeded, reproducible cases of failing servers and
networks (host_tests/faults.py). For each: the agent ends with a clear error, or, when the
fault can be survived (a dropped connection resumed with Range, a redirect, a chunked
reply...), with exactly the served image in the slot; after a failed update the board
boots the image it runs, and the next clean update succeeds. The running image is never
touched."""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter

from conftest import install_agent
from faults import HTTP_HEAP, SURVIVABLE, FaultServer

from tools.image import build_app

SEED = 5151
CASES = 240
BATCH = 60
SIZE = 48_000

DEVICE = """
import json, esp32, hashlib, binascii
from acupdate.agent import Updater, NAMES
from acupdate.config import Config
up = Updater(Config(url="{url}", timeout=0.5, backoff=0.05, reboot=False))
top = [0]
def prog(amount, size):
    top[0] = max(top[0], amount)
up.on_progress = prog
def boot():
    return esp32.Partition(0).info()[4]
def written(n):  # MD5 of the first n bytes of the slot the update wrote
    p = esp32.Partition(esp32.Partition.RUNNING).get_next_update()
    h = hashlib.md5()
    buf = up.buf  # (the agent's block buffer: no other 4 KiB in the agent's heap)
    blk = 0
    while n > 0:
        p.readblocks(blk, buf)
        h.update(buf if n >= 4096 else memoryview(buf)[:n])
        n -= 4096
        blk += 1
    return binascii.hexlify(h.digest()).decode()
def fresh():  # the target slot's first block erased: each update downloads (a slot that
    # holds the image complete is only set to boot, acupdate.ota.held)
    esp32.Partition(esp32.Partition.RUNNING).get_next_update().ioctl(6, 0)
for i in range({first}, {last}):
    before = boot()
    top[0] = 0
    fresh()
    st = up.update("case%d.bin" % i, size={size})
    out = [i, NAMES[st], up.error, before, boot(), top[0], written({size}) if st == 4 else ""]
    fresh()
    out.append(NAMES[up.update("clean.bin")])
    print(json.dumps(out))
"""

# What a failed update must say: the words a person can act on, per fault.
EXPECT = {
    "cut-always": ("; gave up after 3 retries",),
    "range-bad": ("Resume refused: Content-Range 'bytes 0-",),
    "range-416": ("Resume refused: the server answered 416 to Range: bytes=",),
    "redirect-loop": ("Too many redirects: more than 5",),
    "bitflip": ("MD5 Check Failed",),
    "bad-md5": ("Bad x-MD5 header",),
    "no-md5": ("No x-MD5 header for case",),  # and the catalog is no catalog here
    "wrong-md5": ("MD5 Check Failed",),
    "bad-sha": ("SHA-256 Check Failed",),
    "magic": ("Verify Bin Header Failed",),
    "merged": ("merged bootloader",),
    "chip": ("Image is for ESP32-S3",),
    "empty": ("Server Did Not Report Size",),
    "garbage-status": ("Bad HTTP status line",),
    "garbage-header": ("Bad HTTP header line",),
    "long-header": ("HTTP line longer than 1024 bytes",),
}


def check_requests(srv: FaultServer, case, where: str) -> str:
    """The requests the agent made for a case that ended well; returns how it got there."""
    reqs = srv.requests_for(case.index)
    name = f"/case{case.index}.bin"
    assert reqs[0] == (name, None), where
    f = case.fault
    if f == "redirect":
        assert reqs == [(name, None), (f"/moved/case{case.index}.bin", None)], (where, reqs)
        return "redirected"
    if f in ("chunked", "more"):
        assert reqs == [(name, None)], (where, reqs)
        return "whole reply"
    start = case.resume_from(SIZE)
    if start == -1:  # the first reply brought every byte before it dropped
        assert reqs == [(name, None)], (where, reqs)
        return "whole reply"
    if start is None:  # dropped inside the first block, before its check: started over
        assert reqs == [(name, None), (name, None)], (where, reqs)
        return "started over (first block)"
    # Asked for exactly the first byte not received, once.
    assert reqs == [(name, None), (name, f"bytes={start}-")], (where, reqs)
    return "started over (200 to Range)" if f == "range-ignored" else "resumed with Range"


def test_fault_injection_campaign(board):
    install_agent(board, mpy=True)  # as tools.deploy puts it on a board
    image = build_app(version="2.0.0", size=SIZE, seed=77)
    md5 = hashlib.md5(image).hexdigest()
    results = []
    with FaultServer(image, random.Random(SEED), CASES, stall_s=2.0) as srv:
        for first in range(0, CASES, BATCH):
            slots = {p.label: board.flash.read_part(p) for p in board.flash.ota_apps()}
            code = DEVICE.format(url=srv.url, first=first, last=first + BATCH, size=SIZE)
            res = board.run(code, heap=HTTP_HEAP)
            assert res.returncode == 0, res.output + res.stderr
            ran = res.boot.slot
            results += [
                [*json.loads(ln), ran.label] for ln in res.output.splitlines() if ln.startswith("[")
            ]
            # The slot the board ran from was never written; the other one holds the
            # last clean update.
            assert board.flash.read_part(ran) == slots[ran.label], f"batch {first}: {ran.label}"
            other = [p for p in board.flash.ota_apps() if p != ran][0]
            assert board.flash.read(other.offset, SIZE) == image
        cases = srv.cases
        assert len(results) == CASES
        outcome: Counter[str] = Counter()
        for (i, status, error, _before, after, top, written, clean, running), case in zip(
            results, cases, strict=True
        ):
            where = f"case {i} ({case.fault} at {case.at}): {status} {error!r}"
            assert clean == "SUCCESS", where
            if case.fault in SURVIVABLE:
                # The update ended well, the slot holds exactly the served image, and no
                # more than its bytes were written.
                assert status == "SUCCESS", where
                assert written == md5 and top == SIZE, where
                outcome[check_requests(srv, case, where)] += 1
            else:
                # The board boots the image it runs: the agent pointed otadata back at it
                # before it overwrote the slot the last clean update made boot next (the
                # update replaces that one; a reset before it ends boots a whole image).
                assert status == "FAIL" and after == running, where
                assert any(w in error for w in EXPECT[case.fault]), where
                outcome["clear error, boots the running image"] += 1
    faults = Counter(c.fault for c in cases)
    print(f"\nfault campaign, seed {SEED}: {CASES} cases {dict(sorted(faults.items()))}")
    print(f"outcomes: {dict(outcome)}; running image untouched; data lost: 0")
