# acupdate.webcat: the UPDATE menu's requests to the update server: GET /_ac/update (the
# catalog, queried before the page's module, webmenu, is loaded) and POST /_ac/update_act
# (the chosen entry looked up in the catalog, the progress page, then the install task,
# acupdate.webfetch). The catalog query is the agent's (acupdate.fetch), through the web
# server's block buffer; its modules leave the heap before a page is built.
from . import web


def config():
    """The update server's Config: serve()'s update_server, else /acupdate.json's "server"."""
    from .config import Config

    s = web.server
    if isinstance(s, str):
        return Config(url=s)
    if s is not None:
        return s
    import json

    try:
        with open("/acupdate.json") as f:
            d = json.load(f).get("server")
    except OSError:
        d = None
    if not d:
        raise ValueError("no update server: give serve() an update_server URL or deploy one")
    return Config.from_dict(d)


def listing(cfg):
    """The catalog's bin entries (see acupdate.catalog.parse), read through the block
    buffer."""
    return cfg.listing(web.block)


def _entries():
    # (server URL, the catalog's bin entries or an error text)
    url = "(none)"
    try:
        if web.busy():  # the block buffer is the update's
            raise OSError("An update is running: see its progress, then come back.")
        cfg = config()
        url = cfg.url()
        return url, listing(cfg)
    except Exception as e:  # MemoryError too: the page says what happened
        return url, web.msg(e)


async def menu(src, w, head):
    """GET /_ac/update: the catalog is queried first, then the transport's modules leave
    the heap and the page's (webmenu) come."""
    url, entries = _entries()
    web.drop("config")
    await _page("catalog", w, url, entries)


async def _page(fn, *args):
    # webmenu.fn(*args), on a collected heap.
    import gc

    gc.collect()
    from . import webmenu

    await getattr(webmenu, fn)(*args)


async def act(src, w, head):
    """POST /_ac/update_act, field `bin`: a catalog entry's name. The entry is looked up
    in the catalog first (still there? its size, for an image sent without a
    Content-Length, and its sha256, checked too), then the progress page is sent and the
    install starts as a task."""
    if web.busy():
        return await web.conflict(src, w, head)
    if src.length > 512:
        return await web.page("refuse", src, w, head, 413)
    while src.n - src.p < src.length:
        if not await src.fill():
            raise ValueError("the form ends early")
    name = ""
    for kv in bytes(src.mv[src.p : src.n]).split(b"&"):
        k, _, v = kv.partition(b"=")
        if k == b"bin":
            name = _unquote(v)
    if not name:
        return await web.page(
            "message",
            w,
            b"400 Bad Request",
            "No image chosen",
            "Choose a firmware image, then UPDATE.",
        )
    url = "(none)"
    try:
        cfg = config()
        url = cfg.url()
        for ent in listing(cfg):
            if ent[0] == name:
                break
        else:
            raise OSError("%s is not in the catalog of %s (any more)" % (name, url))
    except Exception as e:  # MemoryError too: the page says what happened
        return await web.page(
            "message", w, b"502 Bad Gateway", "No update", "%s: %s" % (url, web.msg(e))
        )
    await _page("started", w, name, url)
    web.begin("server", name)
    web.drop("webcat", "webmenu", "webpage", "webbar")  # the task needs none of them
    import asyncio

    from . import webfetch

    web.enter()  # the install task needs its modules until it ends
    asyncio.create_task(webfetch.run(cfg, name, ent[3], ent[4] if len(ent) > 4 else None))


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
