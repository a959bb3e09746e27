# acupdate.config: where the update server is and how the agent behaves (Config).
# AutoConnectUpdate's settings (host, port 8000, path "." on the server, request timeout,
# LED pin and its active level, reboot after success) and the transport's (https with the
# board's CA file, basic authentication, connect timeout, the deadline of an update and of
# a catalog query, retries of a dropped download and their backoff).
from micropython import const

from . import Phase

_PORT = const(8000)
_TIMEOUT = const(8)  # seconds, for connect and for each socket read


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


class Config:
    """Update settings. `Config(url="http://host:8000/fw")` or `Config("host", path="fw")`;
    https: `Config(url="https://host/fw", ca="/ca.der")` (the CA's certificate, DER or PEM,
    on the board). `user`/`password`: HTTP basic authentication. Seconds: `timeout` (each
    read), `connect_timeout` (default: timeout), `deadline` (a whole update),
    `catalog_deadline` (a catalog query); a download that drops is resumed up to `retries`
    times, after `backoff`, 2x, 4x... seconds. A bad setting is a ValueError naming it."""

    # Defaults: an instance stores only what differs (a small attribute table).
    led = ca = user = auth = None
    led_on = 1
    reboot = True
    tls = False
    deadline = 600
    catalog_deadline = 60
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
        # kw: tls, ca, user, password, connect_timeout, deadline, catalog_deadline,
        # retries, backoff.
        with Phase():
            import acupdate.settings

            checked = acupdate.settings.check(
                host, port, path, timeout, led, led_on, reboot, url, kw
            )
        # Set once the checks have left the heap: the instance's attribute table, and a
        # copy of each text the checks made, go into the space they took. (A text made
        # while their code was loaded lies past it; left there, it splits the free heap
        # that the next piece of work, a 4 KiB block buffer, wants whole: device/README.md.)
        for k, v in checked:
            if v != getattr(Config, k, self):  # only what differs from the class's default
                if isinstance(v, str):
                    v = v[:]  # (MicroPython: a new str)
                setattr(self, k, v)

    @classmethod
    def from_dict(cls, d):
        """Build from a dict (e.g. a JSON config file); unknown keys are an error."""
        return cls(**d)

    def url(self):
        """The server's URL with its catalog folder: 'http://host:8000/fw'."""
        return "%s://%s:%d/%s" % (
            "https" if self.tls else "http",
            self.host,
            self.port,
            "" if self.path == "." else self.path,
        )

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
