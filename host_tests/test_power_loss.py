"""Power-loss campaign: cut the power at seeded random moments of 50 updates (while
blocks are written, between the last write and set_boot, inside set_boot's otadata
update: before the erase, after it, with the entry half written). After every
power-up the board must boot a valid image, the old one or the new one, never none,
and a new update must succeed."""

from __future__ import annotations

import random

import pytest
from conftest import install_agent

from tools.board import BoardError
from tools.image import build_app
from tools.server.core import UpdateServer

SEED = 20261127
CASES = 50
SIZE = 120_000

UPDATE = """
from acupdate.agent import Updater, NAMES
from acupdate.config import Config
up = Updater(Config(url="{url}", reboot=False))
def progress(amount, size):
    if amount >= {cut_at}:
        print("CUT", amount)
        up.on_progress = None
up.on_progress = progress
st = up.update("app.bin")
print("STATUS", NAMES[st], up.error)
"""

CLEAN = """
import esp32
from acupdate.agent import Updater, NAMES
from acupdate.config import Config
up = Updater(Config(url="{url}", reboot=False))
st = up.update("app.bin")
print("STATUS", NAMES[st], up.error)
if NAMES[st] == "SUCCESS":
    import machine
    machine.reset()
"""


def plan(rng: random.Random) -> list[tuple[str, int]]:
    kinds = ["writes"] * 30 + ["before-set-boot"] * 5
    kinds += ["otadata-erase"] * 5 + ["otadata-write"] * 5 + ["otadata-torn"] * 5
    rng.shuffle(kinds)
    return [(k, rng.randrange(4096, SIZE) if k == "writes" else SIZE) for k in kinds]


def test_power_loss_campaign(board, tmp_path):
    install_agent(board)
    cat = tmp_path / "catalog"
    cat.mkdir()
    rng = random.Random(SEED)
    counts: dict[str, int] = {}
    old = "1.0.0"
    with UpdateServer(cat) as srv:
        for i, (kind, cut_at) in enumerate(plan(rng)):
            new = f"2.{i}.0"
            (cat / "app.bin").write_bytes(build_app(version=new, size=SIZE, seed=i))
            code = UPDATE.format(url=srv.url, cut_at=cut_at)
            if kind.startswith("otadata"):
                board.cut_power_at = kind
                res = board.run(code)
                assert res.returncode == -9, (i, kind, res.output)  # died inside set_boot
            else:
                running = board.start(code)
                assert running.wait_output("CUT"), (i, kind, running.output)
                running.power_off()

            # Power up: a valid image boots, the old one or (if set_boot had finished
            # before the cut) the new one, pending verification.
            try:
                fresh = f"3.{i}.0"
                (cat / "app.bin").write_bytes(build_app(version=fresh, size=SIZE, seed=100 + i))
                res = board.run(CLEAN.format(url=srv.url))
            except BoardError as e:
                pytest.fail(f"case {i} ({kind} at {cut_at}): board does not boot: {e}")
            line = res.boot.log_line()
            assert f"version={old} " in line or (
                f"version={new} " in line and res.boot.state == "PENDING_VERIFY"
            ), (i, kind, line)
            key = f"{kind}: booted {'old' if f'version={old} ' in line else 'new'}"
            counts[key] = counts.get(key, 0) + 1
            # ... and a new update succeeds; it boots, and confirms itself.
            assert "STATUS SUCCESS" in res.output and res.reset == "hard", (i, kind, res.output)
            res = board.run("import esp32\nesp32.Partition.mark_app_valid_cancel_rollback()")
            assert f"version={fresh} " in res.boot.log_line(), (i, kind)
            old = fresh
    print(f"\npower-loss campaign, seed {SEED}: {CASES} cuts, every power-up booted:", counts)
    assert sum(counts.values()) == CASES
