"""The acupdate demo, on a simulated ESP32 driven through the real mpremote.

Until the device agent lands, this shows the board simulator doing an OTA by hand:
build v1 and v2 images, boot a board on v1, copy v2 over the serial REPL, write it to
the inactive slot with esp32.Partition, set_boot, hard reset, watch the bootloader
boot v2 pending verification, confirm it, and print the slot table.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tools.board import Board, BoardError
from tools.board.serial import SerialBoard
from tools.image import build_app

WRITER = """\
import esp32
p = esp32.Partition(esp32.Partition.RUNNING).get_next_update()
buf = bytearray(4096)
blk = 0
with open('v2.bin', 'rb') as f:
    while True:
        n = f.readinto(buf)
        if not n:
            break
        buf[n:] = b'\\xff' * (4096 - n)
        p.writeblocks(blk, buf)
        blk += 1
p.set_boot()
print('wrote', blk, 'blocks to', p.info()[4], '- boot partition set')
"""


class DemoError(Exception):
    pass


def step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def mpremote(sb: SerialBoard, *args: str) -> str:
    exe = Path(sys.executable).parent / "mpremote"
    res = subprocess.run(
        [str(exe), "connect", sb.device, *args], capture_output=True, text=True, timeout=120
    )
    if res.returncode:
        raise DemoError(f"mpremote {' '.join(args)} failed:\n{res.stdout}{res.stderr}")
    return res.stdout


def run(workdir: Path) -> int:
    t0 = time.monotonic()
    step("building firmware images v1.0.0 and v2.0.0")
    v1 = build_app(version="1.0.0", project="acupdate-demo", size=600_000, seed=1)
    v2 = build_app(version="2.0.0", project="acupdate-demo", size=600_000, seed=2)
    (workdir / "v2.bin").write_bytes(v2)
    print(f"v1: {len(v1)} bytes, v2: {len(v2)} bytes, md5(v2) {hashlib.md5(v2).hexdigest()}")

    step("creating a simulated ESP32 (4 MiB flash, MicroPython OTA layout) running v1")
    board = Board.create(workdir / "board", v1)
    with SerialBoard(board) as sb:
        if not sb.wait_boots(1):
            raise DemoError("the board did not boot")
        print(sb.boots[0])
        print(f"serial port: {sb.device}")

        step("copying v2 to the board and writing it to the inactive slot (mpremote)")
        out = mpremote(sb, "cp", str(workdir / "v2.bin"), ":v2.bin", "+", "exec", WRITER)
        print(out.strip().splitlines()[-1])

        step("hard reset: the bootloader boots v2, pending verification")
        mpremote(sb, "reset")
        if not sb.wait_boots(2):
            raise DemoError("the board did not come back after the reset")
        print(sb.boots[1])
        if "version=2.0.0" not in sb.boots[1] or "PENDING_VERIFY" not in sb.boots[1]:
            raise DemoError(f"expected v2 pending verification, got: {sb.boots[1]}")

        step("confirming v2 (mark_app_valid_cancel_rollback), then reset again")
        mpremote(sb, "exec", "import esp32; esp32.Partition.mark_app_valid_cancel_rollback()")
        mpremote(sb, "reset")
        if not sb.wait_boots(3):
            raise DemoError("the board did not come back after the second reset")
        print(sb.boots[2])
        if "version=2.0.0" not in sb.boots[2] or "state=VALID" not in sb.boots[2]:
            raise DemoError(f"expected v2 confirmed, got: {sb.boots[2]}")

    step("final state")
    print(board.state_table())
    print(
        f"\nsummary: 1.0.0 -> 2.0.0, {len(v2)} bytes, md5 {hashlib.md5(v2).hexdigest()}, "
        f"{time.monotonic() - t0:.1f} s"
    )
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="acupdate-demo", description=__doc__.split("\n")[0])
    p.add_argument("--workdir", help="keep the board and images here (default: a temp dir)")
    args = p.parse_args(argv)
    try:
        if args.workdir:
            Path(args.workdir).mkdir(parents=True, exist_ok=True)
            return run(Path(args.workdir))
        with tempfile.TemporaryDirectory(prefix="acupdate-demo-") as tmp:
            return run(Path(tmp))
    except (DemoError, BoardError) as e:
        print(f"\ndemo failed: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
