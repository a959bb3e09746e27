# acupdate.browse: the REPL's catalog commands: ls() (the server's images, printed as they
# arrive) and what ota.update() given no name says when the catalog lists no image or
# several. acupdate.repl loads it for the command only, so that its code is out of the heap
# during a transfer; failures are printed by acupdate.console, loaded for the line.
from . import Phase

_ENTRY = "  %-24s %-10s %-8s %10s"


def _failed(what, text, url):
    with Phase():
        import acupdate.console

        return acupdate.console.failed(what, text, url)


def _empty(url):
    with Phase():
        import acupdate.console

        return acupdate.console.empty(url)


def _size(n):
    if n >= 1048576:
        return "%.2f MiB" % (n / 1048576)
    if n >= 1024:
        return "%.1f KiB" % (n / 1024)
    return "%d B" % n


def ls(url):
    """Print the bin entries of the update server at `url` (None: /acupdate.json's) as they
    arrive. Returns how many there are, "NOAVAIL" (none) or "FAIL" (a line says why)."""
    buf = bytearray(4096)  # first, while the heap is in one piece
    try:
        with Phase():  # the settings' checks before the agent's modules come
            import acupdate.boardconfig

            cfg = acupdate.boardconfig.server(url)
    except ValueError as e:
        return _failed("ls", e.args[0], url)
    from .agent import Updater, error_text

    print("Update server %s" % cfg.url())
    seen = [0]

    def row(e):
        if not seen[0]:
            print(_ENTRY % ("name", "date", "time", "size"))
        seen[0] += 1
        print(_ENTRY % (e.name, e.date, e.time[:8], _size(e.size)))

    try:
        n = Updater(cfg, buf).scan(row)
    except (OSError, ValueError, MemoryError) as e:
        return _failed("ls", error_text(e), cfg.url())
    return n or _empty(cfg.url())


def choose(n, first, url):
    """What ota.update() says when it was given no name and the catalog of `url` lists `n`
    bin entries, not one (`first`: [the first one's name] or []); "NOAVAIL" for none, else
    None."""
    if not n:
        return _empty(url)
    print(
        "The server lists %d images; choose one: ota.update(%r) (ota.ls() lists them)"
        % (n, first[0])
    )
    return None
