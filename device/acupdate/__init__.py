# acupdate: OTA update agent for MicroPython on ESP32, a port of AutoConnect's
# AutoConnectUpdate. Submodules are imported on demand, so that each costs heap only when
# used: repl (the REPL commands), agent, config, http, catalog, slots, imagecheck, ota.
# A phase that needs a module for a while brackets it with loaded() and unload(), so
# that its code leaves the heap again when the phase ends.
import sys


def loaded():
    """Names of the acupdate submodules imported now."""
    out = []
    for k in sys.modules:
        if k.startswith("acupdate."):
            out.append(k)
    return out


def unload(before):
    """Unload the acupdate submodules imported since `before` (a loaded() list). Their
    dicts are emptied too, so that their code leaves the heap at the next collection even
    if a stale pointer on the C stack names one of their functions; hence call this only
    for modules no one else holds."""
    for k in loaded():
        if k not in before:
            globals().pop(k[9:], None)
            sys.modules.pop(k).__dict__.clear()
