# acupdate.web.menupages: AutoConnect's UPDATE menu's pages: the catalog (loaded once query has
# queried the update server and unloaded what that took) as radio buttons, or "No available
# firmwares", or the server's error; the UPDATE button; the progress page of the install
# (install), which polls /_ac/update_progress.
from . import core

_WATCH_JS = (
    b"var T=setInterval(function(){poll().then(function(p){if(p.status=='SUCCESS'||"
    b"p.status=='FAIL'||p.status=='NOAVAIL'){clearInterval(T);fetch('/_ac/update_result',",
    b"{cache:'no-store'}).then(function(r){return r.text()}).then(put)}}).catch("
    b"function(){})},250)</script>",
)


def _size(n):
    if n >= 1048576:
        return b"%.2f MiB" % (n / 1048576)
    return b"%.1f KiB" % (n / 1024) if n >= 1024 else b"%d bytes" % n


async def catalog(w, url, entries):
    """The UPDATE page of the catalog `entries` (query's) of the server at `url`."""
    from . import frame

    esc = frame.esc
    if isinstance(entries, str):
        rows = [b'<p class="err">', esc(entries), b"</p>"]
    elif not entries:
        rows = [b"<p>No available firmwares</p>"]
    else:
        rows = [
            b'<form method="POST" action="/_ac/update_act"><table><tr><th></th><th>'
            b"Firmware</th><th>Date</th><th>Time</th><th>Size</th></tr>"
        ]
        for i, e in enumerate(entries):
            name, date, tm, size = e.name, e.date, e.time, e.size
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
    await core.send(
        w,
        frame.OK,
        frame.page("Update", b'<p class="note">Update server: ', esc(url), b"</p>", *rows),
    )


async def started(w, name, url):
    """The progress page of the install of `name` from `url` (menu.act's)."""
    from . import frame, progressbar

    await core.send(
        w,
        frame.OK,
        frame.page(
            "Updating",
            b"<p>Installing <b>",
            frame.esc(name),
            b"</b> from ",
            frame.esc(url),
            b"</p>",
            progressbar.BAR,
            *progressbar.JS,
            *_WATCH_JS,
        ),
    )
