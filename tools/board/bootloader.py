"""The second-stage bootloader, built with app rollback as MicroPython's OTA variant is.

At every hard reset: any otadata entry still PENDING_VERIFY means that image never
confirmed itself: it becomes ABORTED (the rollback).  The selectable entry with the
highest ota_seq picks the slot; an entry in NEW becomes PENDING_VERIFY.  A slot whose
image fails validation is refused: the bootloader tries the slots below it, down to
the factory app, then the ones above it.  No slot bootable: the board is dead.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import layout
from .flash import Flash
from .layout import Part


class NoBootableApp(Exception):
    """The bootloader found no valid app image: on a real board, a boot loop."""


@dataclass
class Boot:
    slot: Part
    state: str  # otadata state of the booted slot, or "-" when otadata does not select it
    rollback: bool  # an unconfirmed image was aborted at this boot
    fallback: list[str]  # slots refused because their image was invalid, with why
    version: str
    project: str

    def log_line(self) -> str:
        rb = "yes" if self.rollback else "no"
        line = (
            f"boot: slot={self.slot.label} version={self.version or '-'} "
            f"project={self.project or '-'} state={self.state} rollback={rb}"
        )
        if self.fallback:
            line += " refused=" + ",".join(self.fallback)
        return line


def boot(flash: Flash) -> Boot:
    rollback = False
    for e in flash.otadata():
        if not e.erased and e.crc_ok and e.state == layout.PENDING_VERIFY:
            flash.write_otadata(e.sector, e.seq, layout.ABORTED)
            rollback = True
    apps = flash.ota_apps()
    active = layout.active_entry(flash.otadata())
    state = "-"
    if active is not None and apps:
        start = apps[(active.seq - 1) % len(apps)]
        if active.state == layout.NEW:
            flash.write_otadata(active.sector, active.seq, layout.PENDING_VERIFY)
            active = layout.active_entry(flash.otadata())
        state = layout.STATE_NAMES.get(active.state, f"0x{active.state:08x}")
    else:
        start = flash.factory() or (apps[0] if apps else None)
    order = _try_order(flash, start)
    refused = []
    for p in order:
        problem = flash.image_problem(p)
        if problem is None:
            desc = _app_desc(flash, p)
            return Boot(
                slot=p,
                state=state if p == start else "-",
                rollback=rollback,
                fallback=refused,
                version=desc.get("version", ""),
                project=desc.get("project_name", ""),
            )
        refused.append(f"{p.label}({problem})")
    raise NoBootableApp("no bootable app partition: " + "; ".join(refused))


def _try_order(flash: Flash, start: Part | None) -> list[Part]:
    """ESP-IDF order: start, the OTA slots below it, the factory app, then the ones above."""
    apps = flash.ota_apps()
    factory = flash.factory()
    ladder = ([factory] if factory else []) + apps
    if start is None:
        return ladder
    i = ladder.index(start)
    return [ladder[j] for j in range(i, -1, -1)] + ladder[i + 1 :]


def _app_desc(flash: Flash, p: Part) -> dict:
    from tools.image import inspect

    info = inspect(flash.read_part(p))
    return info.app_desc or {}
