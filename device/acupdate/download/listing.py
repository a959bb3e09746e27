# acupdate.download.listing: the Updater's catalog() and find(), and the catalog's figures
# for a download whose reply lacks them (a static host sends no x-MD5). Loaded for the call
# only (a Phase in acupdate.agent): an update that needs none of them does not keep their
# code in the heap.


def catalog(up):
    """Updater `up`'s catalog(): the server's bin entries as a list of Entry, kept in
    up.listed for update(name). OSError when they do not fit in the heap."""
    up.listed = None
    out = []
    try:
        up.scan(out.append)
    except MemoryError:
        n = len(out)
        if not n:
            raise  # the query itself had no room
        out = None
        raise OSError(
            "the catalog's bin entries do not fit in the heap (%d read): use "
            "Updater.scan() or find(), which keep none" % n
        )
    up.listed = out
    return out


def find(up, name):
    """Updater `up`'s find(name): the catalog's bin Entry named `name`, or None; the catalog
    is read up to it, and up.listed keeps it for update(name)."""
    found = []

    def match(entry):
        if entry.name == name:
            found.append(entry)
            return True
        return False

    up.listed = None
    up.scan(match)
    up.listed = found
    return found[0] if found else None


def fill(up, dl, lacks):
    """Download `dl`'s md5, size and sha256 from its entry in Updater `up`'s catalog, where
    its reply gave none; `lacks` says what the reply did not give."""
    try:
        e = find(up, dl.name)
    except (OSError, ValueError) as x:
        from ..http.response import errname  # the errno's name, or the error's text

        raise OSError("%s, and its catalog entry cannot be read: %s" % (lacks, errname(x)))
    up.listed = None
    if e is None:
        raise OSError("%s, and the catalog of %s does not list it" % (lacks, up.cfg.url()))
    dl.md5 = e.md5 if dl.md5 is None else dl.md5
    dl.size = e.size if dl.size is None else dl.size
    dl.sha256 = e.sha256 if dl.sha256 is None else dl.sha256
