# acupdate.download.request: the agent's requests, loaded for them. get(): a request as an
# acupdate.config.Config says: http, or https checked against the board's CA file
# (acupdate.http.tls); basic authentication, sent to that server only; up to 5 redirects
# (never from https to http); a Range; the
# update's deadline (due). catalog(): the catalog query.
import gc
import time

from micropython import const

from .. import loaded, unload
from ..config import cold
from ..http import response as http

_REDIRECTS = const(5)
_HEAD = const(3070)  # reply heads go to buf[_HEAD:], http.LINE_MAX + 2 bytes


def due(cfg):
    """The time.ticks_ms() value at which cfg.deadline seconds from now have passed."""
    return time.ticks_add(time.ticks_ms(), int(cfg.deadline * 1000))


def get(cfg, target, hdrs, buf, deadline, ctx, start=0):
    """GET `target` from the server of Config `cfg`: http, or https checked against its
    CA file (acupdate.http.tls); basic authentication, sent to that server only; up to 5
    redirects (301, 302, 303, 307, 308; absolute or relative Location; never from https to
    http). The reply, which is not a redirect. `hdrs`: raw header lines (bytes); `buf`:
    request()'s head buffer; `deadline`: see due(); `ctx`: a one-item list that keeps the
    TLS context; `start` > 0 asks for the bytes from there on (Range). The modules loaded
    for the head (httphead; https, cfgcheck) are unloaded once it is read."""
    before = loaded()
    tls, host, port = cfg.tls, cfg.host, cfg.port
    loc = ""
    for _ in range(_REDIRECTS + 1):
        h = [hdrs]
        if cfg.auth and tls == cfg.tls and host == cfg.host and port == cfg.port:
            h.append(cfg.auth)
        if start:
            h.append(b"Range: bytes=%d-\r\n" % start)
        c = None
        if tls:
            c = ctx and ctx[0]
            if not c:
                if not cfg.ca:
                    raise OSError("https to %s:%d needs a CA file (Config ca=)" % (host, port))
                c = cold("http.tls", "context", cfg.ca)
                if ctx:
                    ctx[0] = c
        r = http.request(
            host,
            port,
            target,
            h,
            cfg.timeout,
            buf,
            c,
            deadline,
            cfg.connect_timeout,
        )
        code = r.status
        if code not in (301, 302, 303, 307, 308):
            unload(before)
            gc.collect()  # as cold() does: the body's reads find the same heap every time
            return r
        loc = r.headers.get("location", "")
        r.close()
        if not loc:
            raise OSError("Redirect (%d) without a Location header" % code)
        tls, host, port, target = cold("settings", "where", loc, tls, host, port, target)
    raise OSError("Too many redirects: more than %d, the last to %s" % (_REDIRECTS, loc))


def catalog(cfg, buf):
    """The reply (200, its body not read yet) to the catalog query of the server in Config
    `cfg`; its head is read into the 4096-byte `buf`'s last 1026 bytes. Config.listing()
    parses the body once this module has left the heap."""
    r = get(cfg, cfg.catalog_target(), b"", memoryview(buf)[_HEAD:], due(cfg), [None])
    if r.status != 200:
        r.close()
        raise OSError("Update server responds (%d)" % r.status)
    return r
