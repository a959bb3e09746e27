"""Fault-injection campaign: 208 seeded, reproducible cases of failing servers and
networks. For each: the agent ends with a clear error (or with the correct image, when
the fault did it no harm or it resumed), the boot slot is unchanged by a failed update,
and the next clean update succeeds. The running image is never touched."""

from __future__ import annotations

import json
import random
from collections import Counter

from conftest import install_agent
from faults import FaultServer

from tools.image import build_app

SEED = 5151
CASES = 208
BATCH = 52
SIZE = 48_000

DEVICE = """
import json, esp32
from acupdate.agent import Updater, NAMES
from acupdate.config import Config
up = Updater(Config(url="{url}", timeout=0.5, reboot=False))
def boot():
    return esp32.Partition(0).info()[4]
for i in range({first}, {last}):
    before = boot()
    st = up.update("case%d.bin" % i)
    out = [i, NAMES[st], up.error, before, boot()]
    out.append(NAMES[up.update("clean.bin")])
    print(json.dumps(out))
"""

# What a failed update must say: the words a person can act on, per fault.
EXPECT = {
    "cut": ("body cut short", "connection closed after"),
    "stall": ("ETIMEDOUT",),
    "drip": ("ETIMEDOUT", "body cut short"),
    "bitflip": ("MD5 Check Failed",),
    "fewer": ("body cut short",),
    "bad-md5": ("Bad x-MD5 header",),
    "no-md5": ("Bad x-MD5 header",),
    "wrong-md5": ("MD5 Check Failed",),
    "magic": ("Verify Bin Header Failed",),
    "merged": ("merged bootloader",),
    "chip": ("Image is for ESP32-S3",),
    "empty": ("Server Did Not Report Size",),
    "garbage-status": ("Bad HTTP status line",),
    "garbage-header": ("Bad HTTP header line",),
    "long-header": ("HTTP line longer than 1024 bytes",),
}


def test_fault_injection_campaign(board):
    install_agent(board)
    image = build_app(version="2.0.0", size=SIZE, seed=77)
    results = []
    with FaultServer(image, random.Random(SEED), CASES, stall_s=2.0) as srv:
        for first in range(0, CASES, BATCH):
            slots = {p.label: board.flash.read_part(p) for p in board.flash.ota_apps()}
            res = board.run(DEVICE.format(url=srv.url, first=first, last=first + BATCH))
            assert res.returncode == 0, res.output + res.stderr
            results += [json.loads(ln) for ln in res.output.splitlines() if ln.startswith("[")]
            # The slot the board ran from was never written; the other one holds the
            # last clean update.
            ran = res.boot.slot
            assert board.flash.read_part(ran) == slots[ran.label], f"batch {first}: {ran.label}"
            other = [p for p in board.flash.ota_apps() if p != ran][0]
            assert board.flash.read(other.offset, SIZE) == image
        cases = srv.cases
    assert len(results) == CASES
    outcome: Counter[str] = Counter()
    for (i, status, error, before, after, clean), case in zip(results, cases, strict=True):
        where = f"case {i} ({case.fault} at {case.at}): {status} {error!r}"
        assert clean == "SUCCESS", where
        if status == "SUCCESS":
            # Only a fault that did the image no harm may end well (the MD5 and the
            # read-back passed, so the flash held exactly the served image).
            assert case.fault in ("more", "cut", "stall", "drip"), where
            outcome["survived (correct image)"] += 1
        else:
            assert status == "FAIL" and after == before, where
            assert any(w in error for w in EXPECT[case.fault]), where
            outcome["clear error, boot slot unchanged"] += 1
    faults = Counter(c.fault for c in cases)
    print(f"\nfault campaign, seed {SEED}: {CASES} cases {dict(faults)}")
    print(f"outcomes: {dict(outcome)}; running image untouched; data lost: 0")
