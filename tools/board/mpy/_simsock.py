# Simulated socket module: the unix port's own sockets (traffic goes over the host's
# loopback), but only while the board has a network, as lwIP on a board: with the station
# not connected and the access point off, a name lookup fails with OSError(-202) (lwIP's
# DNS failure, as MicroPython's ESP32 port reports it) and a TCP connect with
# OSError(EHOSTUNREACH) (no route). A numeric address still "resolves", as on a board.
# The board's start-up (_board.py) installs this module as sys.modules["socket"].
import socket as _s

import network

for _k in dir(_s):
    if not _k.startswith("__"):
        globals()[_k] = getattr(_s, _k)
del _k

_EHOSTUNREACH = 113


class _Offline(_s.socket):
    # A socket made while the board had no network: its connect finds no route.
    def connect(self, addr):
        if not network._up():
            raise OSError(_EHOSTUNREACH)
        _s.socket.connect(self, addr)


def socket(af=_s.AF_INET, type=_s.SOCK_STREAM, proto=0):
    if af == _s.AF_UNIX or network._up():
        return _s.socket(af, type, proto)
    return _Offline(af, type, proto)


def _numeric(host):
    parts = host.split(".")
    if len(parts) != 4:
        return False
    for p in parts:
        if not p or not p.isdigit() or int(p) > 255:
            return False
    return True


def getaddrinfo(host, port, af=0, type=0, proto=0, flags=0):
    if not network._up() and not _numeric(str(host)):
        raise OSError(-202)
    return _s.getaddrinfo(host, port, af, type, proto, flags)
