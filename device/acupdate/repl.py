# acupdate.repl: the agent for a person at the REPL (mpremote repl):
#   import acupdate.repl as ota
#   ota.ls()                 the server's images, printed as they arrive
#   ota.update("app.bin")    download, check, write, set boot (then reset)
#   ota.status()             slots, versions, otadata states
#   ota.confirm() / ota.rollback()
# Settings come from /acupdate.json ("server": {...}) unless a url= is given. A failure of
# the server, the network, the Wi-Fi, the image or the heap is one printed line that says
# what happened (naming the URL or the file) and what to try, never a traceback, and the
# call returns "FAIL" ("NOAVAIL" for a catalog without images); a wrong argument type
# (a programming error) still raises TypeError.
# The other commands' work, and what a failure prints, is acupdate.console's, loaded for
# the command only (a Phase), so that an update has the heap it would take.
import time

from . import Phase
from .config import Config  # noqa: F401 (loaded before config()'s Phase: a Config outlives it)


def config(url=None, **kw):
    """The Config of the update server at `url`, or of /acupdate.json's "server" (with
    `kw` over it; a None there is a setting not given)."""
    with Phase():
        import acupdate.boardconfig

        return acupdate.boardconfig.server(url, **kw)


def _failed(what, text, url=None):
    # The failure's line (acupdate.console.failed); "FAIL".
    with Phase():
        import acupdate.console

        return acupdate.console.failed(what, text, url)


def _no_heap(what):
    # The line for a MemoryError that left the command's code (even console's could not
    # load): no module to import, nothing to format but a number; "FAIL".
    import gc

    gc.collect()
    print(
        "%s failed: the heap is too small (%d bytes free): machine.reset() gives a fresh heap, "
        "then try again" % (what, gc.mem_free())
    )
    return "FAIL"


def _str(what, v):
    # TypeError unless `v` is None or a str: a programming error, which raises.
    if v is not None and not isinstance(v, str):
        raise TypeError("%s must be a str, got %s" % (what, type(v).__name__))


def ls(url=None):
    """Print the update server's bin entries as they arrive. Returns how many there are,
    "NOAVAIL" when there are none, or "FAIL" (with a line saying why)."""
    _str("url", url)
    try:
        with Phase():
            import acupdate.browse

            return acupdate.browse.ls(url)
    except MemoryError:
        return _no_heap("ls")


def status():
    """Print each OTA slot: image version, otadata state, running / next boot. Returns the
    running slot's otadata state."""
    with Phase():
        import acupdate.console

        return acupdate.console.status()


def confirm():
    """Mark the running image valid, so the bootloader keeps it. True when it is (or was
    already) confirmed; a refusal is printed, with why."""
    with Phase():
        import acupdate.console

        return acupdate.console.confirm()


def rollback(reset=False):
    """Boot the other slot's image at the next reset (a complete image that has not failed
    its health check); with reset, the board resets a moment after rollback() has returned,
    as after update(). Its label, or None (the refusal is printed, with why)."""
    with Phase():
        import acupdate.console

        return acupdate.console.rollback(reset)


def update(name=None, url=None, reboot=None, quiet=False, timeout=None):
    """Install image `name` from the update server (the only one when name is None).
    Returns "SUCCESS" (it boots at the next reset; with reboot, the board resets first),
    "NOAVAIL" (the board runs it already), "FAIL" (a line says why), or None when there
    is more than one image to choose from ("NOAVAIL" when there is none)."""
    _str("name", name)
    _str("url", url)
    try:
        return _update(name, url, reboot, quiet, timeout)
    except MemoryError:
        return _no_heap("Update")


def _update(name, url, reboot, quiet, timeout):
    # The block buffer first, while the heap is in one piece; the settings' checks before
    # the agent's modules come: the heap is at its emptiest for each.
    buf = bytearray(4096)
    try:
        cfg = config(url, reboot=reboot, timeout=timeout)
    except ValueError as e:
        return _failed("Update", e.args[0], url)
    from .agent import NAMES, Updater, error_text

    up = Updater(cfg, buf)
    if name is None:
        first = []  # the name of the catalog's first bin entry

        def keep(e):
            if not first:
                first.append(e.name)

        try:
            n = up.scan(keep)
        except (OSError, ValueError, MemoryError) as e:
            return _failed("Update", error_text(e), cfg.url())
        if n != 1:
            with Phase():
                import acupdate.browse

                return acupdate.browse.choose(n, first, cfg.url())
        name = first[0]
        first = keep = None  # (the closure and the list do not stay through the update)
    shown = [-1]  # the percent on the screen (-1: no progress line)
    if not quiet:
        print("Updating %s from %s" % (name, cfg.url()))
        up.on_progress = _progress(shown)
    st = NAMES[up.update(name)]
    if shown[0] >= 0:
        print()
    with Phase():
        import acupdate.console

        if acupdate.console.outcome(st, name, up.error, cfg.reboot, cfg.url(), up.kept):
            acupdate.console.reset_soon()
    return st


def _progress(shown):
    # The progress callback: one line, redrawn in place: percent, bytes, rate (shown[0]:
    # the percent on the screen, -1 before the first line).
    t0 = time.ticks_ms()

    def progress(amount, size):
        pct = amount * 100 // size
        if pct != shown[0] or amount == size:
            shown[0] = pct
            dt = max(time.ticks_diff(time.ticks_ms(), t0), 1)
            rate = amount / 1.024 / dt
            print("\r  %3d%%  %d / %d bytes  %.1f KiB/s   " % (pct, amount, size, rate), end="")

    return progress
