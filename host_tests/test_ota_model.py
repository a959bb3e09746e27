"""Model-based test of the OTA state machine (Hypothesis stateful testing).

Random sequences of what a user and the world do to a board: update (a good or a bad image;
some interrupted by Ctrl-C, cut by a power loss while the image is written or inside
set_boot's otadata update), confirm, rollback, hard reset, soft reset, power cut, the Wi-Fi
going down (the health check then fails), flash a fresh board. They run on the simulated
board with the real MicroPython and the real agent (acupdate.repl, acupdate.agent.Updater
against the real update server on loopback, boot.py's start-up). After every step (and every
boot inside one) the board is compared with a reference model of ESP-IDF's rules written
here, independently of tools.board: the ESP-IDF OTA calls the agent made (Board.calls) are
replayed on the model (esp_ota_set_boot_partition, esp_ota_mark_app_valid_cancel_rollback;
the bootloader with app rollback at each hard reset) and its otadata, the slot each boot
picks and the state it boots in must be the board's, byte for byte. Then the agent's
invariant is checked on the model:

  complete   otadata selects a slot holding a complete image (no reliance on the
             bootloader's fallback), and every boot finds one;
  no-rerun   an image that failed its health check does not run again (unless downloaded
             again: every download is a new image);
  valid      the active otadata entry is VALID only for an image that has booted and passed
             its health check, that the user confirmed (confirm()) while it ran, or that
             booted with no otadata entry at all (a freshly flashed board's: ESP-IDF never
             rolls it back, so the agent may keep it VALID);
  untouched  the running slot is never written;
  no-crash   confirm() and rollback() end without an exception.

The seed is fixed (ACUPDATE_MODEL_SEED to change it; printed when the test fails): every CI
run tries the same sequences. ACUPDATE_MODEL_COUNT=FILE counts the violations of every
example into FILE (JSON) instead of failing at the first: the figures for a report.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import install_agent
from hypothesis import HealthCheck, Phase, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from tools.board import Board
from tools.image import build_app
from tools.server.core import UpdateServer

ROOT = Path(__file__).resolve().parent.parent
SEED = int(os.environ.get("ACUPDATE_MODEL_SEED", "20261204"))
EXAMPLES = int(os.environ.get("ACUPDATE_MODEL_EXAMPLES", "500"))
COUNT = os.environ.get("ACUPDATE_MODEL_COUNT")
SIZE = 9000  # bytes of an image: three 4096-byte blocks, so a cut can fall inside it
SPAN = 0x4000  # flash erased per slot for a fresh board (covers an image)
WIFI = ("acupdate-lab", "otapass123")

# ESP-IDF's otadata states
NEW, PENDING, VALID, INVALID, ABORTED = 0, 1, 2, 3, 4
NAMES = {NEW: "NEW", PENDING: "PENDING_VERIFY", VALID: "VALID", INVALID: "INVALID"}
NAMES[ABORTED] = "ABORTED"
LABELS = ("ota_0", "ota_1")

# The health check of every image (boot.py imports it, see "health" in the settings): the
# image is good unless its version starts with "bad".
HC = """import esp32
_b = bytearray(96)
esp32.Partition(esp32.Partition.RUNNING).readblocks(0, _b)
if bytes(_b[48:51]) == b"bad":
    raise ImportError("this image is broken")
"""

# The test's hand on the board: after boot.py, it runs the code the host sends, one
# command at a time, in this same life of the board.
DRIVER = """import sys
print("@@READY")
while True:
    src = ""
    while True:
        ln = sys.stdin.readline()
        if not ln:
            raise SystemExit(0)
        if ln == "@@GO\\n":
            break
        src += ln
    try:
        exec(src, {"__name__": "__main__"})
        print("@@DONE ok")
    except KeyboardInterrupt:
        print("@@DONE KeyboardInterrupt")
    except Exception as e:
        sys.print_exception(e)
        print("@@DONE %s %s" % (type(e).__name__, e))
"""

UPDATE = """from acupdate.agent import Updater, NAMES
from acupdate.config import Config
up = Updater(Config(url={url!r}, reboot=False))
def cut(amount, size):
    if amount >= {cut_at}:
        if {ctrl_c}:
            raise KeyboardInterrupt
        print("@@CUT")
        while True:
            pass
up.on_progress = cut if {cut_at} else None
st = up.update({name!r})
print("@@STATUS", NAMES[st], up.error)
"""


class ModelMismatch(AssertionError):
    """The board did not do what ESP-IDF's rules say: the simulator (or the model) is wrong."""


class Model:
    """ESP-IDF's OTA rules for two OTA slots and no factory app, after esp_ota_ops.c and
    bootloader_utility.c: otadata entries are (seq, state) per sector, None when erased,
    ("torn", seq) when half written (bad crc); the slots hold an image id or None."""

    def __init__(self, base: int):
        self.otadata: list = [None, None]
        self.slots: list = [base, None]

    @staticmethod
    def usable(e) -> bool:
        return e is not None and e[0] != "torn" and e[1] not in (INVALID, ABORTED)

    def active(self) -> int | None:
        best = None
        for i in (0, 1):
            e = self.otadata[i]
            if self.usable(e) and (best is None or e[0] > self.otadata[best][0]):
                best = i
        return best

    def selected(self) -> int:
        """The slot otadata picks (ota_0 when no entry is usable)."""
        a = self.active()
        return 0 if a is None else (self.otadata[a][0] - 1) % 2

    def set_boot(self, slot: int) -> tuple[str, int | None, tuple | None]:
        """('OK' | 'ERR code', sector written, entry written)."""
        if self.slots[slot] is None:
            return "ERR 5379", None, None  # ESP_ERR_OTA_VALIDATE_FAILED
        a = self.active()
        if a is None:
            return "OK", 0, (slot + 1, NEW)
        seq, target, i = self.otadata[a][0], (slot + 1) % 2, 0
        while seq > target + 2 * i:
            i += 1
        return "OK", 1 - a, (target + 2 * i, NEW)

    def mark_valid(self) -> str:
        a = self.active()
        if a is None:
            return "ERR -1"  # ESP_FAIL: "running firmware is factory"
        self.otadata[a] = (self.otadata[a][0], VALID)
        return "OK"

    def boot(self) -> tuple[int | None, str]:
        """The bootloader: (slot booted or None, its otadata state name or '-')."""
        for i in (0, 1):
            e = self.otadata[i]
            if e is not None and e[0] != "torn" and e[1] == PENDING:
                self.otadata[i] = (e[0], ABORTED)
        a = self.active()
        start, state = 0, "-"
        if a is not None:
            start = (self.otadata[a][0] - 1) % 2
            if self.otadata[a][1] == NEW:
                self.otadata[a] = (self.otadata[a][0], PENDING)
            state = NAMES.get(self.otadata[a][1], "?")
        for slot in (start, 1 - start):  # start, the slot below it, then above
            if self.slots[slot] is not None:
                return slot, state if slot == start else "-"
        return None, "-"


def observed_otadata(board: Board) -> list:
    out = []
    for e in board.flash.otadata():
        if e.erased:
            out.append(None)
        elif e.crc_ok:
            out.append((e.seq, e.state))
        else:
            out.append(("torn", e.seq))
    return out


class Lab:
    """What every example shares: one board directory, the update server, the images."""

    def __init__(self, tmp: Path):
        self.catalog = tmp / "catalog"
        self.catalog.mkdir()
        self.server = UpdateServer(self.catalog).__enter__()
        self.base = build_app(version="base", size=SIZE, seed=0)
        self.board = Board.create(tmp / "board", self.base)
        install_agent(self.board, mpy=True)
        fs = self.board.fs
        (fs / "boot.py").write_text((ROOT / "boot.py").read_text())
        (fs / "hc.py").write_text(HC)
        (fs / "driver.py").write_text(DRIVER)
        self.images: dict[int, bytes] = {0: self.base}
        self.counter = 0
        self.examples = 0
        self.steps = 0
        self.counts: dict[str, int] = {}
        self.violating_examples = 0

    def settings_file(self, wifi_ok: bool) -> None:
        cfg = {
            "wifi": {"ssid": WIFI[0], "key": WIFI[1] if wifi_ok else "wrong key", "wait_ms": 300},
            "server": {"url": self.server.url, "reboot": False},
            "health": {"imports": ["hc"]},
        }
        (self.board.fs / "acupdate.json").write_text(json.dumps(cfg))

    def new_image(self, good: bool) -> tuple[int, str]:
        self.counter += 1
        n = self.counter
        version = ("good%d" if good else "bad%d") % n
        data = build_app(version=version, size=SIZE - 64 + n % 64, seed=n)
        self.images[n] = data
        name = f"{version}.bin"
        (self.catalog / name).write_bytes(data)
        return n, name

    def close(self) -> None:
        self.server.__exit__(None, None, None)


class Life:
    """One life of the board: MicroPython from a boot to its end, running DRIVER."""

    def __init__(self, board: Board, boot: str):
        self.board = board
        self.running = board.start(script=board.fs / "driver.py", boot=boot)
        self.pos = 0

    def wait(self, *marks: str, timeout: float = 120) -> str | None:
        """The first of `marks` the board prints from here on, None if MicroPython ended."""
        r = self.running
        with r._cond:
            ok = r._cond.wait_for(
                lambda: any(m.encode() in r._out[self.pos :] for m in marks) or r.ended,
                timeout,
            )
            text = bytes(r._out[self.pos :])
        if not ok:
            r.power_off()
            raise AssertionError(f"the board hung:\n{text.decode(errors='replace')}")
        found = [(text.find(m.encode()), m) for m in marks if m.encode() in text]
        if not found:
            return None
        at, mark = min(found)
        self.pos += at + len(mark)
        return mark

    def send(self, code: str) -> None:
        self.running.proc.stdin.write(code.encode() + b"\n@@GO\n")
        self.running.proc.stdin.flush()

    def output(self) -> str:
        return self.running.output

    def end(self):
        """Wait for MicroPython to end by itself (a reset); its RunResult."""
        return self.running.wait(120)

    def power_off(self):
        try:
            self.running.proc.stdin.close()
        except OSError:
            pass
        return self.running.power_off()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = Lab(tmp_path_factory.mktemp("model"))
    yield lab
    lab.close()


def make_machine(lab: Lab):
    class OtaMachine(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            lab.examples += 1
            self.violations: list[str] = []
            self.trace: list[str] = []
            self.life: Life | None = None
            self.fresh_board()

        # --- bookkeeping ---------------------------------------------------------
        def violated(self, kind: str, why: str) -> None:
            self.violations.append(f"{kind}: {why}")
            lab.counts[kind] = lab.counts.get(kind, 0) + 1
            if not COUNT:
                raise AssertionError(
                    f"invariant {kind!r} broken: {why}\nsteps: {self.trace}\n"
                    f"seed {SEED} (ACUPDATE_MODEL_SEED)"
                )

        def mismatch(self, why: str) -> None:
            raise ModelMismatch(f"{why}\nsteps: {self.trace}\nseed {SEED}")

        def observe_slots(self) -> None:
            """The image in each slot, as bytes on flash: an image id when a whole image
            the test built is there, else None (nothing bootable)."""
            for i, label in enumerate(LABELS):
                p = lab.board.flash.part(label)
                head = lab.board.flash.read(p.offset, SPAN)
                found = None
                for n, data in lab.images.items():
                    if head[: len(data)] == data:
                        found = n
                        break
                if i == self.running and found != self.model.slots[i]:
                    self.violated("untouched", f"the running slot {label} was written")
                self.model.slots[i] = found

        def replay_calls(self) -> None:
            """The ESP-IDF calls the board's code made since the last look, on the model."""
            calls = lab.board.calls[self.ncalls :]
            self.ncalls = len(lab.board.calls)
            for cmd, arg, reply in calls:
                self.trace.append(f"  {cmd} {arg} -> {reply}")
                if cmd == "VALID":
                    if self.running is None:
                        self.mismatch("mark_valid with nothing running")
                    want = self.model.mark_valid()
                    a = self.model.active()
                    if want == "OK" and self.context == "confirm":
                        if (self.model.otadata[a][0] - 1) % 2 == self.running:
                            # the user confirmed the image that runs: their call
                            self.confirmed.add(self.model.slots[self.running])
                else:
                    slot = LABELS.index(arg)
                    want, sector, entry = self.model.set_boot(slot)
                    if reply.startswith("CUT"):
                        step = reply.split()[1]
                        if step == "otadata-write":
                            self.model.otadata[sector] = None
                        elif step == "otadata-torn":
                            self.model.otadata[sector] = ("torn", entry[0])
                        continue
                    if want == "OK":
                        self.model.otadata[sector] = entry
                if reply.split()[:2] != want.split()[:2] and not reply.startswith("CUT"):
                    got = reply.split()[:2]
                    if not (want.startswith("ERR") and got[:1] == ["ERR"]):
                        self.mismatch(f"{cmd} {arg}: board {reply!r}, ESP-IDF {want!r}")
                    elif abs(int(got[1])) != abs(int(want.split()[1])):
                        self.mismatch(f"{cmd} {arg}: board {reply!r}, ESP-IDF {want!r}")
            if observed_otadata(lab.board) != self.model.otadata:
                self.mismatch(
                    f"otadata: board {observed_otadata(lab.board)}, model {self.model.otadata}"
                )

        # --- boots ---------------------------------------------------------------
        def power_up(self, kind: str = "power") -> None:
            """Boot (bootloader: "power"; or a soft reset) and run boot.py; a boot.py that
            resets (a failed health check) boots again, as a board does."""
            for _ in range(6):
                if kind == "power":
                    slot, state = self.model.boot()
                    if slot is None:
                        self.violated("complete", "no slot holds a bootable image")
                        self.fresh_board()
                        return
                    image = self.model.slots[slot]
                    if image in self.failed:
                        self.violated(
                            "no-rerun", f"image {image} failed its health check and runs again"
                        )
                    self.running = slot
                    self.booted.add(image)
                    if self.model.active() is None:
                        # booted with no otadata entry: ESP-IDF never rolls it back (as a
                        # factory app); the agent may keep it VALID
                        self.untracked.add(image)
                try:
                    self.life = Life(lab.board, kind)
                except Exception as e:  # a board that does not boot at all
                    self.mismatch(f"the board did not boot: {e}")
                if kind == "power":
                    b = self.life.running.boot
                    got = (b.slot.label, b.state)
                    if got != (LABELS[slot], state):
                        self.mismatch(f"boot: board {got}, model {(LABELS[slot], state)}")
                    self.trace.append(f"  boot {LABELS[slot]} {state}")
                mark = self.life.wait("@@READY")
                out = self.life.output()
                image = self.model.slots[self.running]
                if "health check failed" in out:
                    self.failed.add(image)
                elif "confirmed after its health check" in out:
                    self.passed.add(image)
                if mark is not None:
                    self.replay_calls()
                    return
                res = self.life.end()
                self.life = None
                self.replay_calls()
                if res.reset != "hard":
                    self.mismatch(f"boot.py ended the board: {res.reset}\n{res.output}")
                kind = "power"
            self.mismatch("the board kept resetting")

        def shut(self, how: str) -> None:
            if self.life is None:
                return
            if how == "reset":
                self.life.send("import machine\nmachine.reset()")
                res = self.life.end()
                if res.reset != "hard":
                    self.mismatch(f"machine.reset() ended as {res.reset}")
            else:
                self.life.power_off()
            self.life = None
            self.replay_calls()

        def command(self, code: str, what: str) -> str:
            """Run a REPL command in this life; the driver's @@DONE line."""
            self.life.send(code)
            mark = self.life.wait("@@DONE")
            text = self.life.output()
            line = text[text.rfind("@@DONE") :].split("\n", 1)[0]
            if mark is None:
                self.mismatch(f"{what}: the board ended\n{text[-2000:]}")
            return line

        # --- rules ---------------------------------------------------------------
        @rule()
        def fresh_board(self):
            """Flash a fresh board: erase otadata and the slots, the base image in ota_0."""
            self.shut("power")
            f = lab.board.flash
            f.erase(f.otadata_part().offset, 0x2000)
            for label in LABELS:
                f.erase(f.part(label).offset, SPAN)
            f.write(f.part("ota_0").offset, lab.base)
            lab.board.cfg["next_reset"] = "power"
            lab.settings_file(True)
            self.model = Model(0)
            self.running: int | None = None
            self.ncalls = len(lab.board.calls)
            self.failed: set[int] = set()
            self.passed: set[int] = set()
            self.confirmed: set[int] = set()
            self.booted: set[int] = set()
            self.untracked: set[int] = set()
            self.context = "boot"
            self.trace.append("fresh_board")
            self.power_up()

        @rule(
            good=st.booleans(),
            how=st.sampled_from(["whole", "whole", "whole", "ctrl-c", "cut", "setboot-cut"]),
            where=st.sampled_from(["otadata-erase", "otadata-write", "otadata-torn"]),
        )
        def update(self, good, how, where):
            n, name = lab.new_image(good)
            self.trace.append(
                f"update {name} {how}" + (f" {where}" if how == "setboot-cut" else "")
            )
            cut_at = 4096 if how in ("ctrl-c", "cut") else 0
            if how == "setboot-cut":
                lab.board.cut_power_at = where
            code = UPDATE.format(
                url=lab.server.url, name=name, cut_at=cut_at, ctrl_c=how == "ctrl-c"
            )
            self.life.send(code)
            mark = self.life.wait("@@DONE", "@@CUT")
            lab.board.cut_power_at = None
            if mark == "@@CUT":
                self.life.power_off()
                self.life = None
            elif mark is None:  # the power went inside set_boot
                self.life.end()
                self.life = None
            self.observe_slots()
            self.replay_calls()
            if self.life is None:
                self.power_up()

        @rule()
        def confirm(self):
            self.trace.append("confirm")
            self.context = "confirm"
            line = self.command("import acupdate.repl as r\nr.confirm()", "confirm")
            self.replay_calls()
            self.context = "boot"
            if line != "@@DONE ok":
                self.violated("no-crash", f"confirm() raised: {line[7:]}")

        @rule()
        def rollback(self):
            self.trace.append("rollback")
            line = self.command("import acupdate.repl as r\nr.rollback()", "rollback")
            self.replay_calls()
            if line != "@@DONE ok":
                self.violated("no-crash", f"rollback() raised: {line[7:]}")

        @rule()
        def reset(self):
            self.trace.append("reset")
            self.shut("reset")
            self.power_up()

        @rule()
        def power_cut(self):
            self.trace.append("power_cut")
            self.shut("power")
            self.power_up()

        @rule()
        def soft_reset(self):
            self.trace.append("soft_reset")
            self.life.send("raise SystemExit")  # as Ctrl-D: this life ends, the image stays
            self.life.end()
            self.life = None
            self.power_up("soft")

        @rule(ok=st.booleans())
        def wifi(self, ok):
            """The Wi-Fi key in /acupdate.json: a wrong one fails the next health check."""
            self.trace.append(f"wifi {'ok' if ok else 'down'}")
            lab.settings_file(ok)

        # --- the agent's invariant -----------------------------------------------
        @invariant()
        def invariants(self):
            lab.steps += 1
            m = self.model
            if m.slots[m.selected()] is None:
                self.violated(
                    "complete", f"otadata selects {LABELS[m.selected()]}, which holds no image"
                )
            a = m.active()
            if a is not None and m.otadata[a][1] == VALID:
                image = m.slots[(m.otadata[a][0] - 1) % 2]
                if image is not None and image not in self.passed | self.confirmed | self.untracked:
                    self.violated(
                        "valid", f"image {image} is VALID before it booted and passed its check"
                    )

        def teardown(self):
            if self.violations:
                lab.violating_examples += 1
            self.shut("power")

    return OtaMachine


def test_ota_state_machine_against_esp_idf_model(lab):
    machine = seed(SEED)(make_machine(lab))
    machine.TestCase.settings = settings(
        max_examples=EXAMPLES,
        stateful_step_count=6,
        deadline=None,
        database=None,
        derandomize=False,
        phases=(Phase.generate,),  # no shrinking: the failure prints its steps and seed
        suppress_health_check=list(HealthCheck),
    )
    try:
        run_state_machine_as_test(machine, settings=machine.TestCase.settings)
    except BaseException:
        print(f"\nOTA model test failed with seed {SEED} (ACUPDATE_MODEL_SEED={SEED} repeats it)")
        raise
    finally:
        report = {
            "seed": SEED,
            "sequences": lab.examples,
            "steps": lab.steps,
            "violations": lab.counts,
            "sequences_with_violations": lab.violating_examples,
        }
        print("\nOTA model test:", json.dumps(report))
        if COUNT:
            Path(COUNT).write_text(json.dumps(report, indent=1))
    assert lab.examples >= EXAMPLES
    if COUNT:
        return
    assert not lab.counts
