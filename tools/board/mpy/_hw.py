# Board-model plumbing shared by the simulated esp32, esp and machine modules:
# the flash file (opened before the board filesystem is mounted at /), one scratch
# sector, and the control socket to the simulator host (otadata, pins, watchdog).
# A flash fault armed by the host for this run (ACUPDATE_SIM_FAULT = "KIND ADDR MASK")
# makes the bits MASK of the byte at ADDR fail as worn NOR cells do; a write still only
# ever clears bits:
#   stuck1  the bits will not program: they keep their value (1 once erased)
#   stuck0  the bits will not erase: they read 0 from power-on, erased or not
#   drop    a program over ADDR loses ADDR's 256-byte page (it keeps its bytes; MASK unused)
import os

from micropython import const

SECTOR = const(4096)
flash = open(os.getenv("ACUPDATE_SIM_FLASH"), "r+b")
flash_size = flash.seek(0, 2)
scratch = bytearray(SECTOR)
_ctl = None
fault = os.getenv("ACUPDATE_SIM_FAULT")
if fault:
    fault = fault.split()
    fault = (fault[0], int(fault[1]), int(fault[2]))


def host(cmd):
    # One request line to the simulator host, one reply line back.
    global _ctl
    if _ctl is None:
        import socket

        _ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # The unix port takes a raw sockaddr: sockaddr_un is family (u16) + path.
        _ctl.connect(b"\x01\x00" + os.getenv("ACUPDATE_SIM_CTL").encode() + b"\x00")
    _ctl.write(cmd + "\n")
    return _ctl.readline().decode().rstrip()


_NAMES = {
    -1: "ESP_FAIL",
    0x102: "ESP_ERR_INVALID_ARG",
    0x104: "ESP_ERR_INVALID_SIZE",
    0x105: "ESP_ERR_NOT_FOUND",
    0x1503: "ESP_ERR_OTA_VALIDATE_FAILED",
}


def esp_err(code):
    # ESP-IDF errors surface as OSError(-code, name), as MicroPython's check_esp_err makes
    # them: ESP_FAIL (-1) is OSError(1, "ESP_FAIL"), a validation failure OSError(-5379, ...).
    return OSError(-code, _NAMES.get(code, "0x%x" % code))


def check(addr, n, size):
    # esp_partition_read/write bounds: start past the end, or running past it.
    if addr > size:
        raise esp_err(0x102)
    if addr + n > size:
        raise esp_err(0x104)


@micropython.viper
def _and(dst: ptr8, src: ptr8, n: int):
    i = 0
    while i < n:
        dst[i] = dst[i] & src[i]
        i += 1


def _byte(addr, op=None, mask=0):
    # The flash byte at addr; with op "and"/"or", stores it AND/OR mask first.
    b = bytearray(1)
    flash.seek(addr)
    flash.readinto(b)
    if op:
        b[0] = b[0] & mask if op == "and" else b[0] | mask
        flash.seek(addr)
        flash.write(b)
    return b[0]


def program(addr, data):
    # NOR program: every stored byte becomes old AND new.
    mv = memoryview(data)
    n = len(mv)
    f = fault
    if f and f[0] != "stuck0" and addr <= f[1] < addr + n:
        _faulty(addr, mv, f)
        return
    done = 0
    while done < n:
        k = min(SECTOR, n - done)
        flash.seek(addr + done)
        flash.readinto(memoryview(scratch)[:k])
        _and(scratch, mv[done:], k)
        flash.seek(addr + done)
        flash.write(memoryview(scratch)[:k])
        done += k


def _faulty(addr, mv, f):
    # A program that covers the faulty byte.
    global fault
    fault = None  # the plain program, once
    if f[0] == "drop":
        lo = max(addr, f[1] & ~255)
        hi = min(addr + len(mv), (f[1] | 255) + 1)
        if lo > addr:
            program(addr, mv[: lo - addr])
        if hi < addr + len(mv):
            program(hi, mv[hi - addr :])
    else:  # stuck1: those bits keep their old value
        old = _byte(f[1]) & f[2]
        program(addr, mv)
        _byte(f[1], "or", old)
    fault = f


def erase(addr, n):
    # NOR erase of whole sectors (addr, n sector aligned): 0xFF.
    for i in range(SECTOR):
        scratch[i] = 0xFF
    for a in range(addr, addr + n, SECTOR):
        flash.seek(a)
        flash.write(scratch)
    f = fault
    if f and f[0] == "stuck0" and addr <= f[1] < addr + n:
        _byte(f[1], "and", ~f[2] & 0xFF)


if fault and fault[0] == "stuck0":
    _byte(fault[1], "and", ~fault[2] & 0xFF)


def read(addr, buf):
    flash.seek(addr)
    flash.readinto(buf)
