# acupdate: an OTA update agent for MicroPython on ESP32, a port of AutoConnect's
# AutoConnectUpdate.
#
# Public: acupdate.repl (the REPL commands), acupdate.agent (Updater, its status values and
# callbacks), acupdate.config (Config), acupdate.startup (what boot.py and main.py run),
# acupdate.web (the board's update pages). Internal: acupdate.http (the HTTP client),
# acupdate.ota (app images, the slot writer, the OTA slots), acupdate.download (the catalog,
# an image's download and its resume).
#
# Phase is the package's one memory mechanism (device/README.md): the modules a phase of
# the work imports leave the heap when the phase ends.
import sys


def loaded():
    """Names of the acupdate submodules imported now."""
    return [k for k in sys.modules if k.startswith("acupdate.")]


def forget(name, clear=False):
    """Take module `name` ('acupdate.x' or 'acupdate.x.y') out of sys.modules and out of its
    package's attributes; with clear, empty its dict too (see unload)."""
    m = sys.modules.pop(name, None)
    package, _, attr = name.rpartition(".")
    p = sys.modules.get(package)
    if p is not None:
        p.__dict__.pop(attr, None)
    if clear and m is not None:
        m.__dict__.clear()


def unload(before):
    """Forget the acupdate submodules imported since `before` (a loaded() list), their dicts
    emptied: their code leaves the heap at the next collection even if a stale pointer (a
    local variable, a value left on the C stack) still names the module. So only for
    modules that nothing uses any more."""
    for k in loaded():
        if k not in before:
            forget(k, True)


class Phase:
    """`with Phase(): ...`: the acupdate modules first imported inside the block are unloaded
    at its end, and the heap collected, so that the next phase finds it as this one did."""

    def __enter__(self):
        self.before = loaded()
        return self

    def __exit__(self, *exc):
        import gc

        unload(self.before)
        gc.collect()
        return False
