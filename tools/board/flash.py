"""The simulated board's SPI flash (one file) and the ESP-IDF operations on it.

NOR semantics: erase sets whole 4096-byte sectors to 0xFF; a write can only clear
bits (the stored byte becomes old AND new).  The OTA-data operations follow
ESP-IDF's esp_ota_set_boot_partition / esp_ota_mark_app_valid_cancel_rollback:
erase the target otadata sector, then write its 32-byte entry.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import layout
from .layout import SECTOR, Part

# ESP-IDF error codes (esp_err.h, esp_ota_ops.h)
ESP_FAIL = -1
ESP_ERR_INVALID_ARG = 0x102
ESP_ERR_INVALID_SIZE = 0x104
ESP_ERR_NOT_FOUND = 0x105
ESP_ERR_OTA_VALIDATE_FAILED = 0x1503


class EspError(Exception):
    """An ESP-IDF call failed; .code is the esp_err_t value."""

    def __init__(self, code: int, why: str):
        super().__init__(f"{why} (esp_err 0x{code:x})")
        self.code = code
        self.why = why


class Flash:
    def __init__(self, path: str | os.PathLike, chip_id: int = 0):
        self.path = Path(path)
        self.size = self.path.stat().st_size
        self.chip_id = chip_id
        self.parts = layout.parse_table(self.read(layout.TABLE_OFFSET, layout.TABLE_SIZE))
        # Test hook for power-loss campaigns: called with a step name before each
        # otadata flash operation; raising from it models the power going away there.
        self.before_op = None

    @classmethod
    def create(cls, path, size=4 * 1024 * 1024, table=layout.MICROPYTHON_OTA_4MB) -> Flash:
        with open(path, "wb") as f:
            f.truncate(0)
            f.write(b"\xff" * size)
            f.seek(layout.TABLE_OFFSET)
            f.write(layout.build_table(table))
        return cls(path)

    # raw flash -------------------------------------------------------------
    def read(self, addr: int, n: int) -> bytes:
        with open(self.path, "rb") as f:
            f.seek(addr)
            return f.read(n)

    def erase(self, addr: int, n: int) -> None:
        if addr % SECTOR or n % SECTOR:
            raise EspError(ESP_ERR_INVALID_SIZE, f"erase 0x{addr:x}+0x{n:x} not sector aligned")
        with open(self.path, "r+b") as f:
            f.seek(addr)
            f.write(b"\xff" * n)

    def write(self, addr: int, data: bytes) -> None:
        old = self.read(addr, len(data))
        new = bytes(a & b for a, b in zip(old, data, strict=True))
        with open(self.path, "r+b") as f:
            f.seek(addr)
            f.write(new)

    # partitions ------------------------------------------------------------
    def part(self, label: str) -> Part:
        for p in self.parts:
            if p.label == label:
                return p
        raise KeyError(label)

    def ota_apps(self) -> list[Part]:
        return sorted((p for p in self.parts if p.is_ota_app), key=lambda p: p.subtype)

    def app_parts(self) -> list[Part]:
        return [p for p in self.parts if p.type == layout.TYPE_APP]

    def factory(self) -> Part | None:
        for p in self.parts:
            if p.type == layout.TYPE_APP and p.subtype == layout.SUBTYPE_FACTORY:
                return p
        return None

    def read_part(self, p: Part) -> bytes:
        return self.read(p.offset, p.size)

    def otadata_part(self) -> Part | None:
        for p in self.parts:
            if p.type == layout.TYPE_DATA and p.subtype == layout.SUBTYPE_DATA_OTA:
                return p
        return None

    def otadata(self) -> list[layout.OtaEntry]:
        p = self.otadata_part()
        return layout.parse_otadata(self.read(p.offset, 2 * SECTOR)) if p else []

    def write_otadata(self, sector: int, seq: int, state: int) -> None:
        p = self.otadata_part()
        addr = p.offset + sector * SECTOR
        entry = layout.pack_entry(seq, state)
        self._step("otadata-erase")
        self.erase(addr, SECTOR)
        self._step("otadata-write", addr, entry)
        self.write(addr, entry)

    def _step(self, name: str, addr: int = 0, data: bytes = b"") -> None:
        if self.before_op is not None:
            self.before_op(self, name, addr, data)

    # images ----------------------------------------------------------------
    def image_problem(self, p: Part) -> str | None:
        """Why ESP-IDF would refuse the image in p (None when it is bootable)."""
        from tools.image import inspect

        info = inspect(self.read_part(p))
        if not info.valid:
            return "; ".join(info.errors) or "invalid image"
        if not info.is_app:
            return "not an app image (no app descriptor)"
        if info.chip_id != self.chip_id:
            return f"chip id {info.chip_id} != this chip's {self.chip_id}"
        return None

    # ESP-IDF OTA calls -----------------------------------------------------
    def boot_partition(self) -> Part:
        """esp_ota_get_boot_partition: what otadata selects (no image check)."""
        apps = self.ota_apps()
        active = layout.active_entry(self.otadata())
        if active is None or not apps:
            return self.factory() or (apps[0] if apps else self.app_parts()[0])
        return apps[(active.seq - 1) % len(apps)]

    def next_update(self, start: Part) -> Part:
        """esp_ota_get_next_update_partition(start): the OTA slot after start, wrapping."""
        apps = self.ota_apps()
        if not apps:
            raise EspError(ESP_ERR_NOT_FOUND, "no OTA app partitions")
        for i, p in enumerate(apps):
            if p == start and i + 1 < len(apps):
                return apps[i + 1]
        return apps[0]

    def set_boot(self, p: Part) -> None:
        """esp_ota_set_boot_partition, its checks in ESP-IDF's order: the image is validated
        first (so a data partition, which holds no app image, fails with
        ESP_ERR_OTA_VALIDATE_FAILED), then the partition type (a data partition that happens
        to hold a valid image: ESP_ERR_INVALID_ARG); the factory app erases otadata; an OTA
        slot gets the next otadata entry, state NEW, in the sector that is not the active one."""
        problem = self.image_problem(p)
        if problem:
            raise EspError(ESP_ERR_OTA_VALIDATE_FAILED, f"{p.label}: {problem}")
        if p.type != layout.TYPE_APP:
            raise EspError(ESP_ERR_INVALID_ARG, f"{p.label} is not an app partition")
        otadata = self.otadata_part()
        if otadata is None:
            raise EspError(ESP_ERR_NOT_FOUND, "no otadata partition")
        if p.subtype == layout.SUBTYPE_FACTORY:
            self._step("otadata-erase")
            self.erase(otadata.offset, 2 * SECTOR)
            return
        n = len(self.ota_apps())
        if not p.is_ota_app or p.ota_index >= n:
            raise EspError(ESP_ERR_INVALID_ARG, f"{p.label} is not one of the {n} OTA slots")
        target = (p.ota_index + 1) % n
        entries = self.otadata()
        active = layout.active_entry(entries)
        if active is None:
            self.write_otadata(0, p.ota_index + 1, layout.NEW)
            return
        i = 0
        while active.seq > target + i * n:
            i += 1
        self.write_otadata(1 - active.sector, target + i * n, layout.NEW)

    def mark_valid(self) -> None:
        """esp_ota_mark_app_valid_cancel_rollback: the ACTIVE otadata entry becomes VALID,
        whatever slot it names (ESP-IDF does not compare it with the running slot: called
        after set_boot(other) and before a reset, it marks the never-booted image VALID).
        No valid entry (otadata erased: a freshly flashed board) or no OTA slot: ESP_FAIL,
        as ESP-IDF logs it, "Running firmware is factory"."""
        if self.otadata_part() is None:
            raise EspError(ESP_ERR_NOT_FOUND, "no otadata partition")
        active = layout.active_entry(self.otadata())
        if active is None or not self.ota_apps():
            raise EspError(ESP_FAIL, "running firmware is factory")
        if active.state != layout.VALID:
            self.write_otadata(active.sector, active.seq, layout.VALID)
