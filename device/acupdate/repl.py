# acupdate.repl: the agent for a person at the REPL (mpremote repl):
#   from acupdate import repl
#   repl.ls()                 the server's images
#   repl.update("app.bin")    download, check, write, set boot (then reset)
#   repl.status()             slots, versions, otadata states
#   repl.confirm() / repl.rollback()
# Settings come from /acupdate.json ("server": {...}) unless a url= is given.
import time

SETTINGS = "/acupdate.json"
_ROW = "  %-6s %-14s %-16s %s"
_RESET_MS = 300  # from update()'s return to the reset


def settings():
    """The board's settings file as a dict ({} when there is none)."""
    import json

    try:
        with open(SETTINGS) as f:
            return json.load(f)
    except OSError:
        return {}


def config(url=None, **kw):
    from .config import Config

    if url is not None:
        return Config(url=url, **kw)
    d = settings().get("server")
    if not d:
        raise ValueError("no update server: pass url='http://host:8000/path' or deploy a config")
    d = dict(d)
    d.update(kw)
    return Config.from_dict(d)


def _size(n):
    if n >= 1048576:
        return "%.2f MiB" % (n / 1048576)
    if n >= 1024:
        return "%.1f KiB" % (n / 1024)
    return "%d B" % n


def ls(url=None):
    """Print the update server's bin entries; returns them."""
    from .agent import Updater

    cfg = config(url)
    entries = Updater(cfg).catalog()
    print("Update server %s" % cfg.url())
    if not entries:
        print("  No available firmwares")
        return entries
    w = 4
    for e in entries:
        w = max(w, len(e[0]))
    print("  %-*s  %-10s %-8s %10s" % (w, "name", "date", "time", "size"))
    for e in entries:
        print("  %-*s  %-10s %-8s %10s" % (w, e[0], e[1], e[2][:8], _size(e[3])))
    return entries


def update(name=None, url=None, reboot=None, quiet=False, timeout=None):
    """Install image `name` from the update server (the only one when name is None)."""
    from .agent import FAIL, NOAVAIL, Updater

    kw = {}
    if reboot is not None:
        kw["reboot"] = reboot
    if timeout is not None:
        kw["timeout"] = timeout
    cfg = config(url, **kw)
    up = Updater(cfg)
    if name is None:
        entries = up.catalog()
        if len(entries) != 1:
            if entries:
                print("Several images on the server; choose one: update(%r)" % entries[0][0])
                for e in entries:
                    print("  ", e[0])
            else:
                print("No available firmwares on %s" % cfg.url())
            return None
        name = entries[0][0]
    if not quiet:
        where = (cfg.host, cfg.port, cfg.image_target(name))
        print(
            ("Updating from https://%s:%d%s" if cfg.tls else "Updating from http://%s:%d%s") % where
        )
        t0 = time.ticks_ms()
        last = [-1]

        def progress(amount, size):
            # One line, redrawn in place: percent, bytes, rate.
            pct = amount * 100 // size
            if pct != last[0] or amount == size:
                last[0] = pct
                dt = max(time.ticks_diff(time.ticks_ms(), t0), 1)
                rate = amount / 1.024 / dt
                print("\r  %3d%%  %d / %d bytes  %.1f KiB/s   " % (pct, amount, size, rate), end="")

        up.on_progress = progress
    st = up.update(name)
    if not quiet:
        print()
    if st == NOAVAIL:
        print("No update: the board already runs %s" % name)
    elif st == FAIL:
        print("Update failed: %s" % up.error)
    else:
        print("Update successful: %s is written and boots at the next reset" % name)
        if cfg.reboot:
            _reboot(3)
    return st


def _reboot(seconds):
    import machine

    try:
        for i in range(seconds, 0, -1):
            print("\rRebooting in %d s (Ctrl-C to cancel) " % i, end="")
            time.sleep(1)
    except KeyboardInterrupt:
        print("\nReboot cancelled: machine.reset() boots the new image")
        return
    print()
    # The reset comes a moment after update() has returned, from a timer: a command that
    # runs it (mpremote exec) then ends before the board resets, instead of waiting for
    # its end for ever; at the REPL the prompt comes back, then the reset.
    machine.Timer(0).init(mode=machine.Timer.ONE_SHOT, period=_RESET_MS, callback=_reset)


def _reset(_timer):
    import machine

    machine.reset()


def status():
    """Print each OTA slot: image version, otadata state, running / next boot."""
    from . import loaded, unload

    before = loaded()
    from .ota import slots

    rows = slots.table()
    rs = slots.running_state()
    rb = slots.rolled_back(rows)
    unload(before)
    print(_ROW % ("slot", "version", "otadata", ""))
    for row in rows:
        print(_ROW % row)
    if rb:
        print(rb[0].upper() + rb[1:])
    if rs == "PENDING_VERIFY":
        print("The running image is not confirmed: confirm() it, or the next reset rolls back.")
    return rs


def confirm():
    """Mark the running image valid, so the bootloader keeps it. Returns True when it is
    (or was already) confirmed; a refusal is printed, with why (see ota.slots.confirm)."""
    from .ota import slots

    try:
        how = slots.confirm()
    except ValueError as e:
        print("Running image %s" % e)
        return False
    if how == "untracked":
        print("Running image needs no confirmation: otadata is blank (a freshly flashed board)")
    elif how == "valid":
        print("Running image confirmed already")
    else:
        print("Running image confirmed")
    return True


def rollback(reset=False):
    """Boot the other slot's image at the next reset (a complete image that has not failed
    its health check); returns its label, or None (the refusal is printed, with why)."""
    from .ota import slots

    try:
        label = slots.rollback()
    except ValueError as e:
        print("Rollback %s" % e)
        return None
    print("Next boot: %s" % label)
    if reset:
        import machine

        machine.reset()
    return label
