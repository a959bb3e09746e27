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
            forget(k, True)


def forget(name, clear=False):
    """Take module `name` ('acupdate.x' or 'acupdate.x.y') out of sys.modules and out of its
    package's attributes, so that nothing of the package holds it; with clear, its dict is
    emptied too (see unload)."""
    m = sys.modules.pop(name, None)
    package, _, attr = name.rpartition(".")
    p = sys.modules.get(package)
    if p is not None:
        p.__dict__.pop(attr, None)
    if clear and m is not None:
        m.__dict__.clear()
