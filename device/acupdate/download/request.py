# acupdate.download.request: a GET to the update server as a Config says: http, or https
# checked against the board's CA file; basic authentication, sent to that server only; up
# to 5 redirects (never from https to http); a Range; a Deadline over all of it.
from micropython import const

from ..http import Url, client

_REDIRECTS = const(5)
HEAD_AT = const(3070)  # reply heads go to buf[HEAD_AT:]: the line buffer's 1026 bytes


def get(cfg, target, lines, buf, deadline, keep, start=0):
    """The reply to GET `target` on the server of Config `cfg`, after its redirects (its
    head read, its body not). `lines`: the request's header lines (bytes); `buf`: the
    4096-byte buffer whose last 1026 bytes take the head; `deadline`: a Deadline; `keep`:
    None, or an object whose `tls` attribute keeps the TLS context for the requests after
    this one (None at first); `start` > 0 asks for the bytes from there on (Range)."""
    url = Url(cfg.tls, cfg.host, cfg.port, target)
    head = memoryview(buf)[HEAD_AT:]
    for _ in range(_REDIRECTS + 1):
        h = [lines]
        if cfg.auth and url.tls == cfg.tls and url.host == cfg.host and url.port == cfg.port:
            h.append(cfg.auth)
        if start:
            h.append(b"Range: bytes=%d-\r\n" % start)
        context = None
        if url.tls:
            context = keep.tls if keep is not None else None
            if context is None:
                if not cfg.ca:
                    raise OSError("https to %s needs a CA file (Config ca=)" % url)
                from ..http import tls

                context = tls.context(cfg.ca)
                if keep is not None:
                    keep.tls = context
        r = client.request(url, h, head, deadline, cfg.timeout, cfg.connect_timeout, context)
        if r.status not in (301, 302, 303, 307, 308):
            return r
        location = r.headers.get("location", "")
        r.close()
        if not location:
            raise OSError("Redirect (%d) without a Location header" % r.status)
        from ..http.url import resolve

        url = resolve(location, url)
    raise OSError("Too many redirects: more than %d, the last to %s" % (_REDIRECTS, url))
