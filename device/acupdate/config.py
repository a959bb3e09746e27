# acupdate.config: where the update server is and how the agent behaves.
# Mirrors AutoConnectUpdate's settings: host, port (8000), path (".") on the server,
# request timeout, LED pin and its active level, reboot after success; and the transport's:
# https with the CA file that checks the server (port 443), basic authentication, connect
# timeout, the whole update's deadline, retries of a dropped download and their backoff.
# The checks and the URL parsing are in acupdate.settings, loaded only while they run.
from micropython import const

_PORT = const(8000)
_TIMEOUT = const(8)  # seconds, for connect and for each socket read
_DEADLINE = const(600)  # seconds for a whole update


def cold(name, key, *args):
    """acupdate.<name>.<key>(*args), with module <name> loaded for the call only (unless
    it was loaded already): code that runs rarely does not stay in the heap."""
    from . import loaded, unload

    before = loaded()
    m = __import__("acupdate." + name, None, None, (key,))
    try:
        return getattr(m, key)(*args)
    finally:
        m = None
        unload(before)
        # Its code leaves the heap now, before anything else is allocated: what comes
        # next finds the same free space whatever garbage the call left (the heap's
        # layout, so its fragmentation, does not depend on a read's timing).
        import gc

        gc.collect()


def quote(s, safe="/"):
    """Percent-encode `s` (UTF-8) for a URL; letters, digits, '-._~' and `safe` stay."""
    keep = b"-._~" + safe.encode()
    out = bytearray()
    for c in s.encode():
        if 48 <= c <= 57 or 65 <= c <= 90 or 97 <= c <= 122 or c in keep:
            out.append(c)
        else:
            out += b"%%%02X" % c
    return out.decode()


def parse_url(url):
    """'http[s]://host[:port][/path]' -> (host, port, path); path '.' when absent."""
    return cold("settings", "parse_url", url)


class Config:
    """Update settings. `Config(url="http://host:8000/fw")` or `Config("host", path="fw")`;
    https: `Config(url="https://host/fw", ca="/ca.der")` (the CA's certificate, DER or PEM,
    on the board). `user`/`password`: HTTP basic authentication. Seconds: `timeout` (each
    read), `connect_timeout` (default: timeout), `deadline` (the whole update); a download
    that drops is resumed up to `retries` times, after `backoff`, 2x, 4x... seconds."""

    # Defaults: an instance stores only what differs (a small attribute table).
    led = ca = user = auth = None
    led_on = 1
    reboot = True
    tls = False
    deadline = _DEADLINE
    retries = 3
    backoff = 0.5

    def __init__(
        self,
        host=None,
        port=_PORT,
        path=".",
        timeout=_TIMEOUT,
        led=None,
        led_on=1,
        reboot=True,
        url=None,
        **kw,
    ):
        # kw: tls, ca, user, password, connect_timeout, deadline, retries, backoff. The
        # checked values come back as (name, value) pairs and are set here, after cfgcheck
        # has left the heap.
        for k, v in cold(
            "settings", "check", host, port, path, timeout, led, led_on, reboot, url, kw
        ):
            if v != getattr(Config, k, self):  # not the class's default
                setattr(self, k, v)

    @classmethod
    def from_dict(cls, d):
        """Build from a dict (e.g. a JSON config file); unknown keys are an error."""
        return cls(**d)

    def url(self):
        return ("https://%s:%d/%s" if self.tls else "http://%s:%d/%s") % (
            self.host,
            self.port,
            "" if self.path == "." else self.path,
        )

    def listing(self, buf):
        """The bin entries of the server's catalog (see acupdate.download.catalog.parse),
        read through the 4096-byte `buf`: the query (acupdate.download.request) leaves the
        heap before the parser comes."""
        from .http import response  # noqa: F401 (the reply is a Response: loaded before, kept)

        r = cold("download.request", "catalog", self, buf)
        try:
            return cold("download.catalog", "parse", r.readinto, memoryview(buf)[:1024])
        finally:
            r.close()

    def catalog_target(self):
        """Request target of the catalog query."""
        return "/_catalog?op=list&path=" + quote(self.path)

    def image_target(self, name):
        """Request target of image `name`: /<name>, or /<path>/<name> when path is not '.'."""
        if not isinstance(name, str) or not name:
            raise ValueError("image name is missing, got %r" % (name,))
        folder = "" if self.path == "." else "/" + quote(self.path)
        return folder + "/" + quote(name, "")

    def __repr__(self):
        return "Config(url=%r, timeout=%r, led=%r, led_on=%r, reboot=%r%s)" % (
            self.url(),
            self.timeout,
            self.led,
            self.led_on,
            self.reboot,
            ", ca=%r, user=%r" % (self.ca, self.user) if self.ca or self.user else "",
        )
