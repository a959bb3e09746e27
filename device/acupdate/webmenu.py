# acupdate.webmenu: AutoConnect's UPDATE menu: the update server's catalog as radio buttons
# (or "No available firmwares", or the server's error), the UPDATE button, and the install
# it starts as a task (webfetch) while the progress page polls /_ac/update_progress.
# Each phase imports what it needs and drops it after: the catalog query (config, catalog,
# http) ends before the page (webpage) is built.
from . import web

_WATCH_JS = (
    b"var T=setInterval(function(){poll().then(function(p){if(p.status=='SUCCESS'||"
    b"p.status=='FAIL'||p.status=='NOAVAIL'){clearInterval(T);fetch('/_ac/update_result',"
    b"{cache:'no-store'}).then(function(r){return r.text()}).then(put)}}).catch("
    b"function(){})},250)</script>"
)


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


def _entries():
    # (server URL, the catalog's bin entries or an error text); the modules are dropped.
    url = "(none)"
    try:
        if web.busy():  # the block buffer is the update's
            raise OSError("An update is running: see its progress, then come back.")
        cfg = config()
        url = cfg.url()
        from . import catalog

        mv = memoryview(web.block)  # the entries through its first KiB, the reply head last
        return url, catalog.fetch(cfg, mv[:1024], mv[3070:])
    except Exception as e:  # MemoryError too: the page says what happened
        return url, web.msg(e)
    finally:
        web.drop("catalog", "http", "config")


def _size(n):
    if n >= 1048576:
        return b"%.2f MiB" % (n / 1048576)
    return b"%.1f KiB" % (n / 1024) if n >= 1024 else b"%d bytes" % n


async def catalog(src, w, head):
    url, entries = _entries()
    import gc

    gc.collect()
    from . import webpage

    esc = webpage.esc
    if isinstance(entries, str):
        rows = [b'<p class="err">', esc(entries), b"</p>"]
    elif not entries:
        rows = [b"<p>No available firmwares</p>"]
    else:
        rows = [
            b'<form method="POST" action="/_ac/update_act"><table><tr><th></th><th>'
            b"Firmware</th><th>Date</th><th>Time</th><th>Size</th></tr>"
        ]
        for i, (name, date, tm, size) in enumerate(entries):
            rows.append(
                b'<tr><td><input type="radio" name="bin" id="b%d" value="%s"%s></td><td>'
                b'<label for="b%d">%s</label></td><td>%s</td><td>%s</td><td>%s</td></tr>'
                % (
                    i,
                    esc(name),
                    b" checked" if not i else b"",
                    i,
                    esc(name),
                    esc(date),
                    esc(tm[:8]),
                    _size(size),
                )
            )
        rows.append(b"</table><p><button>UPDATE</button></p></form>")
    await web.send(
        w,
        webpage.OK,
        webpage.page("Update", b'<p class="note">Update server: ', esc(url), b"</p>", *rows),
    )


async def install(src, w, head):
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
    try:
        cfg = config()
    except Exception as e:
        return await web.page(
            "message", w, b"500 Internal Server Error", "No update server", web.msg(e)
        )
    url = cfg.url()
    from . import webbar, webpage

    await web.send(
        w,
        webpage.OK,
        webpage.page(
            "Updating",
            b"<p>Installing <b>",
            webpage.esc(name),
            b"</b> from ",
            webpage.esc(url),
            b"</p>",
            webbar.BAR,
            webbar.JS,
            _WATCH_JS,
        ),
    )
    web.begin("server", name)
    # The task starts once this request is over; it needs none of the page modules.
    webpage = webbar = None
    web.drop("webmenu", "webpage", "webbar")
    import asyncio

    from . import webfetch

    web.enter()  # the install task needs its modules until it ends
    asyncio.create_task(webfetch.run(cfg, name))


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
