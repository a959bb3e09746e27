# acupdate.repl: the agent for a person at the REPL (mpremote repl):
#   import acupdate
#   acupdate.ls()                 the server's images
#   acupdate.update("app.bin")    download, check, write, set boot (then reset)
#   acupdate.status()             slots, versions, otadata states
#   acupdate.confirm() / acupdate.rollback()
# Settings come from /acupdate.json ("server": {...}) unless a url= is given.
import time

SETTINGS = "/acupdate.json"


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
    w = max(len(e[0]) for e in entries)
    print("  %-*s  %-10s %-8s %10s" % (w, "name", "date", "time", "size"))
    for name, date, tm, size in entries:
        print("  %-*s  %-10s %-8s %10s" % (w, name, date, tm[:8], _size(size)))
    return entries


class _Progress:
    # One line, redrawn in place: percent, bytes, rate.
    def __init__(self):
        self.t0 = time.ticks_ms()
        self.last = -1

    def __call__(self, amount, size):
        pct = amount * 100 // size
        if pct == self.last and amount < size:
            return
        self.last = pct
        dt = max(time.ticks_diff(time.ticks_ms(), self.t0), 1)
        print(
            "\r  %3d%%  %d / %d bytes  %.1f KiB/s   " % (pct, amount, size, amount / 1.024 / dt),
            end="",
        )


def update(name=None, url=None, reboot=None, quiet=False, timeout=None):
    """Install image `name` from the update server (the only one when name is None)."""
    from .agent import FAIL, NOAVAIL, Updater

    kw = {} if reboot is None else {"reboot": reboot}
    if timeout is not None:
        kw["timeout"] = timeout
    cfg = config(url, **kw)
    up = Updater(cfg)
    if name is None:
        names = [e[0] for e in up.catalog()]
        if len(names) != 1:
            if names:
                print("Several images on the server; choose one: update(%r)" % names[0])
                for n in names:
                    print("  ", n)
            else:
                print("No available firmwares on %s" % cfg.url())
            return None
        name = names[0]
    if not quiet:
        print("Updating from %s%s" % (cfg.url(), name))
        up.on_progress = _Progress()
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
    machine.reset()


def status():
    """Print each OTA slot: image version, otadata state, running / next boot."""
    import esp32

    from . import imagecheck, slots

    run = slots.running().info()[2]
    boot = esp32.Partition(esp32.Partition.BOOT).info()[2]  # type: ignore[arg-type]
    states = slots.otadata()
    usable = [s for s in states if s[1] is not None]
    buf = bytearray(4096)
    apps = [p for p in esp32.Partition.find(esp32.Partition.TYPE_APP) if p.info()[1] >= 0x10]
    print("  %-6s %-14s %-16s %s" % ("slot", "version", "otadata", ""))
    for i, p in enumerate(apps):
        info = p.info()
        p.readblocks(0, buf)
        try:
            version = imagecheck.app_desc(buf)[0] or "(blank)"
        except ValueError:
            version = "(no image)"
        state = "-"
        for _, seq, name, _ok in usable:
            if (seq - 1) % len(apps) == i:
                state = name
        marks = ("running " if info[2] == run else "") + ("next-boot" if info[2] == boot else "")
        print("  %-6s %-14s %-16s %s" % (info[4], version, state, marks))
    rs = slots.running_state()
    if rs == "PENDING_VERIFY":
        print("The running image is not confirmed: confirm() it, or the next reset rolls back.")
    return rs


def confirm():
    """Mark the running image valid, so the bootloader keeps it."""
    from . import slots

    slots.confirm()
    print("Running image confirmed")


def rollback(reset=False):
    """Boot the other slot's image at the next reset (it must be a valid image)."""
    from . import slots

    label = slots.rollback()
    print("Next boot: %s" % label)
    if reset:
        import machine

        machine.reset()
    return label
