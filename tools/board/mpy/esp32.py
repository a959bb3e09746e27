# Simulated esp32 module: esp32.Partition exactly as MicroPython's ESP32 port
# (ports/esp32/esp32_partition.c over ESP-IDF's esp_partition/esp_ota_ops).
import errno
import os
import struct

import _hw
from micropython import const

_TABLE = const(0x8000)
HEAP_DATA = 0
HEAP_EXEC = 1


def _load_table():
    parts = []
    entry = bytearray(32)
    for pos in range(_TABLE, _TABLE + 0xC00, 32):
        _hw.read(pos, entry)
        if entry[0] != 0xAA or entry[1] != 0x50:
            break
        t, s, a, n = struct.unpack_from("<BBII", entry, 2)
        label = bytes(entry[12:28]).split(b"\0")[0].decode()
        parts.append((t, s, a, n, label))
    return tuple(parts)


_parts = _load_table()
_running = os.getenv("ACUPDATE_SIM_RUNNING")


def _by_label(label, ptype=None):
    for p in _parts:
        if p[4] == label and (ptype is None or p[0] == ptype):
            return p
    return None


class Partition:
    BOOT = 0
    RUNNING = 1
    TYPE_APP = 0
    TYPE_DATA = 1

    def __init__(self, id, block_size=4096):
        if isinstance(id, int):
            if id == 0:
                p = _by_label(_hw.host("BOOT"))
            elif id == 1:
                p = _by_label(_running)
            else:
                raise ValueError
        else:
            # mp_obj_str_get_str: a str or bytes label, anything else is a TypeError.
            label = _label(id)
            p = _by_label(label, 0) or _by_label(label, 1)
        if p is None:
            raise OSError(errno.ENOENT)
        self._p = p
        self._bs = block_size

    def __repr__(self):
        t, s, a, n, label = self._p
        return "<Partition type=%u, subtype=%u, address=%u, size=%u, label=%s, encrypted=0>" % (
            t,
            s,
            a,
            n,
            label,
        )

    @staticmethod
    def find(type=0, subtype=0xFF, label=None, block_size=4096):
        if label is not None:
            label = _label(label)
        out = []
        for p in _parts:
            if p[0] == type and subtype in (0xFF, p[1]) and label in (None, p[4]):
                out.append(Partition(p[4], block_size))
                out[-1]._p = p
        return out

    def info(self):
        t, s, a, n, label = self._p
        return (t, s, a, n, label, False)

    def readblocks(self, block, buf, offset=0):
        off = block * self._bs + offset
        _hw.check(off, len(buf), self._p[3])
        _hw.read(self._p[2] + off, buf)

    def writeblocks(self, block, buf, offset=None):
        off = block * self._bs
        n = len(buf)
        if offset is None:
            if self._bs >= 4096:
                self._erase(off, n)
            else:
                self._erase_around(off, n)
        else:
            off += offset
        _hw.check(off, n, self._p[3])
        _hw.program(self._p[2] + off, buf)

    def _erase(self, off, n):
        # esp_partition_erase_range: whole sectors only, inside the partition.
        size = self._p[3]
        if off > size or off % 4096:
            raise _hw.esp_err(0x102)
        if n > size - off or n % 4096:
            raise _hw.esp_err(0x104)
        _hw.erase(self._p[2] + off, n)

    def _erase_around(self, off, n):
        # Block size below the sector size: erase each covering sector, keeping
        # the bytes of that sector outside [off, off + n).
        sc = _hw.scratch
        top = off + n
        addr = off - off % 4096
        while addr < top:
            keep_lo = off - addr if off > addr else 0
            keep_hi = addr + 4096 - top if top < addr + 4096 else 0
            if keep_lo or keep_hi:
                self.readblocks(0, sc, addr)
                lo = bytes(sc[:keep_lo])
                hi = bytes(sc[4096 - keep_hi :])
            self._erase(addr, 4096)
            if keep_lo:
                _hw.program(self._p[2] + addr, lo)
            if keep_hi:
                _hw.program(self._p[2] + top, hi)
            addr += 4096

    def ioctl(self, op, arg):
        if op in (1, 2, 3):
            return 0
        if op == 4:
            return self._p[3] // self._bs
        if op == 5:
            return self._bs
        if op == 6:
            if self._bs != 4096:
                return -errno.EINVAL
            self._erase(arg * 4096, 4096)
            return 0
        return None

    def set_boot(self):
        reply = _hw.host("SETBOOT " + self._p[4])
        if reply != "OK":
            raise _hw.esp_err(int(reply.split()[1]))

    def get_next_update(self):
        # esp_ota_get_next_update_partition: the OTA slot after this one, else the first.
        apps = sorted((p for p in _parts if p[0] == 0 and 0x10 <= p[1] < 0x20), key=_sub)
        if not apps:
            raise OSError(errno.ENOENT)
        for i, p in enumerate(apps):
            if p is self._p and i + 1 < len(apps):
                return Partition(apps[i + 1][4])
        return Partition(apps[0][4])

    @classmethod
    def mark_app_valid_cancel_rollback(cls):
        reply = _hw.host("VALID")
        if reply != "OK":
            raise _hw.esp_err(int(reply.split()[1]))


def _label(id):
    if isinstance(id, str):
        return id
    if isinstance(id, bytes):
        return id.decode()
    raise TypeError("can't convert '%s' object to str implicitly" % type(id).__name__)


def _sub(p):
    return p[1]
