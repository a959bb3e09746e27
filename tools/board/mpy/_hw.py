# Board-model plumbing shared by the simulated esp32, esp and machine modules:
# the flash file (opened before the board filesystem is mounted at /), one scratch
# sector, and the control socket to the simulator host (otadata, pins, watchdog).
import os

from micropython import const

SECTOR = const(4096)
flash = open(os.getenv("ACUPDATE_SIM_FLASH"), "r+b")
flash_size = flash.seek(0, 2)
scratch = bytearray(SECTOR)
_ctl = None


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


def esp_err(code):
    # ESP-IDF errors surface as OSError(-code, name), as check_esp_err does.
    names = {0x102: "ESP_ERR_INVALID_ARG", 0x104: "ESP_ERR_INVALID_SIZE"}
    return OSError(-code, names.get(code, "ESP_ERR_OTA_VALIDATE_FAILED"))


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


def program(addr, data):
    # NOR program: every stored byte becomes old AND new.
    mv = memoryview(data)
    done = 0
    n = len(mv)
    while done < n:
        k = min(SECTOR, n - done)
        flash.seek(addr + done)
        flash.readinto(memoryview(scratch)[:k])
        _and(scratch, mv[done:], k)
        flash.seek(addr + done)
        flash.write(memoryview(scratch)[:k])
        done += k


def erase(addr, n):
    # NOR erase of whole sectors (addr, n sector aligned): 0xFF.
    for i in range(SECTOR):
        scratch[i] = 0xFF
    for a in range(addr, addr + n, SECTOR):
        flash.seek(a)
        flash.write(scratch)


def read(addr, buf):
    flash.seek(addr)
    flash.readinto(buf)
