# acupdate.web.menu: AutoConnect's UPDATE menu's requests. GET /_ac/update (the catalog
# page: acupdate.web.query) and POST /_ac/update_act (field `bin`: the entry to install: its
# progress page here, then acupdate.web.install) hand the work with the update server to a
# job (acupdate.web.jobs), done with the web server closed (web.serve), so that the agent's
# code has the heap asyncio and the requests took.
from . import core


def _pages():
    # acupdate.web.menupages, imported on a collected heap.
    import gc

    gc.collect()
    from . import menupages

    return menupages


async def menu(src, w):
    """GET /_ac/update: the catalog page, answered by query on this connection."""
    if core.busy():
        return await _pages().catalog(
            w, where(), "An update is running: see its progress, then come back."
        )
    sock = w.s
    w.s = None  # the connection is jobs's now (its close() here closes nothing)
    core.step_aside("query", sock)


def where():
    """The update server's URL as the pages show it (start found it)."""
    return core.url or "(no update server: give serve() an update_server URL or deploy one)"


async def act(src, w):
    """POST /_ac/update_act, field `bin`: a catalog entry's name. The progress page, then
    the install, by install (which first looks the entry up in the catalog: still
    there? its size, for an image sent without a Content-Length, and its sha256, checked
    too)."""
    if core.busy():
        from .busy import conflict

        return await conflict(src, w)
    if src.length > 512:
        from .pages import refuse

        return await refuse(src, w, 413)
    while src.n - src.p < src.length:
        if not await src.fill():
            raise ValueError("the form ends early")
    name = ""
    for kv in bytes(src.mv[src.p : src.n]).split(b"&"):
        k, _, v = kv.partition(b"=")
        if k == b"bin":
            name = _unquote(v)
    if not name:
        from .pages import message

        return await message(
            w,
            b"400 Bad Request",
            "No image chosen",
            "Choose a firmware image, then UPDATE.",
        )
    await _pages().started(w, name, where())
    core.begin("server", name)
    core.step_aside("install", name)


def _unquote(v):
    # A urlencoded form value (bytes) as str.
    v = v.replace(b"+", b" ")
    out = bytearray()
    i = 0
    while i < len(v):
        if v[i] == 37 and i + 3 <= len(v):
            out.append(int(v[i + 1 : i + 3].decode(), 16))
            i += 3
        else:
            out.append(v[i])
            i += 1
    return out.decode()
