# Simulated esp module: the flash calls of MicroPython's ESP32 port.
import _hw


def flash_size():
    return _hw.flash_size


def flash_user_start():
    return 0x310000


def flash_read(offset, buf):
    _hw.check(offset, len(buf), _hw.flash_size)
    _hw.read(offset, buf)


def flash_write(offset, buf):
    _hw.check(offset, len(buf), _hw.flash_size)
    _hw.program(offset, buf)


def flash_erase(sector):
    _hw.erase(sector * 4096, 4096)


def osdebug(level, *args):
    pass
