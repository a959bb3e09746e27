# Simulated network module: WLAN with the board's MAC addresses. The access points
# the board can see come from the simulator (ACUPDATE_SIM_WIFI = "ssid:key,...");
# traffic itself goes over the host's loopback.
import os

STA_IF = 0
AP_IF = 1
STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
STAT_BEACON_TIMEOUT = 200
STAT_NO_AP_FOUND = 201
STAT_WRONG_PASSWORD = 202
STAT_ASSOC_FAIL = 203
STAT_HANDSHAKE_TIMEOUT = 204
AUTH_OPEN = 0
AUTH_WPA2_PSK = 3

_state = [False, False]  # active, per interface
_status = [STAT_IDLE]
_hostname = ["esp32"]


def _aps():
    out = {}
    for item in (os.getenv("ACUPDATE_SIM_WIFI") or "").split(","):
        if item:
            ssid, _, key = item.partition(":")
            out[ssid] = key
    return out


def _up():
    # The board has a network: the station joined an access point, or its own AP is on.
    return (_state[STA_IF] and _status[0] == STAT_GOT_IP) or _state[AP_IF]


def hostname(name=None):
    if name is None:
        return _hostname[0]
    _hostname[0] = name


class WLAN:
    def __init__(self, interface=STA_IF):
        self._if = interface

    def active(self, on=None):
        if on is None:
            return _state[self._if]
        _state[self._if] = bool(on)
        if not on and self._if == STA_IF:
            _status[0] = STAT_IDLE

    def connect(self, ssid=None, key=None, bssid=None):
        if not _state[STA_IF]:
            raise OSError("Wifi Not Started")
        aps = _aps()
        if ssid not in aps:
            _status[0] = STAT_NO_AP_FOUND
        elif aps[ssid] != (key or ""):
            _status[0] = STAT_WRONG_PASSWORD
        else:
            _status[0] = STAT_GOT_IP

    def disconnect(self):
        _status[0] = STAT_IDLE

    def status(self, param=None):
        if param == "rssi":
            return -55
        return _status[0] if self._if == STA_IF else STAT_IDLE

    def isconnected(self):
        if self._if == AP_IF:
            return False
        return _state[STA_IF] and _status[0] == STAT_GOT_IP

    def scan(self):
        return [
            (s.encode(), b"\x24\x0a\xc4\x00\x00\x99", 6, -55, AUTH_WPA2_PSK, False) for s in _aps()
        ]

    def ifconfig(self, conf=None):
        if conf is not None:
            return
        if self._if == AP_IF:
            return ("192.168.4.1", "255.255.255.0", "192.168.4.1", "192.168.4.1")
        if self.isconnected():
            return ("127.0.0.1", "255.0.0.0", "127.0.0.1", "127.0.0.1")
        return ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")

    def config(self, param=None, **kw):
        if kw:
            return
        if param == "mac":
            import machine

            return machine._mac(self._if)
        if param == "hostname":
            return _hostname[0]
        if param == "ssid":
            return "ESP_SIM" if self._if == AP_IF else ""
        raise ValueError("unknown config param")
