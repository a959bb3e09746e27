# acupdate.config: where the update server is and how the agent behaves.
# Mirrors AutoConnectUpdate's settings: host, port (8000), path (".") on the server,
# request timeout, LED pin and its active level, reboot after success.
from micropython import const

_PORT = const(8000)
_TIMEOUT = const(8)  # seconds, for connect and for each socket read
_KNOWN = ("host", "port", "path", "timeout", "led", "led_on", "reboot", "url")


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
    """'http://host[:port][/path]' -> (host, port, path); path '.' when absent."""
    if not isinstance(url, str):
        raise ValueError("update server URL must be a string, got %r" % (url,))
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError("update server URL %r has no scheme: use http://host:port/path" % url)
    if scheme.lower() != "http":
        raise ValueError("update server URL %r: only http:// is supported" % url)
    host, slash, path = rest.partition("/")
    if "?" in path or "#" in path:
        raise ValueError("update server URL %r: a query or fragment is not allowed" % url)
    port = _PORT
    i = host.rfind(":")
    if i >= 0 and "]" not in host[i:]:
        try:
            port = int(host[i + 1 :])
        except ValueError:
            raise ValueError("update server URL %r: port %r is not a number" % (url, host[i + 1 :]))
        host = host[:i]
    if host[:1] == "[" and host[-1:] == "]":
        host = host[1:-1]
    if not host:
        raise ValueError("update server URL %r has no host" % url)
    return host, port, slash + path or "."


def norm_path(path):
    """Catalog folder as the server's `path` query wants it: relative, no edge slashes."""
    if path is None:
        return "."
    if not isinstance(path, str):
        raise ValueError("path must be a string, got %r" % (path,))
    p = path.strip("/")
    if p in ("", "."):
        return "."
    for part in p.split("/"):
        if part == "..":
            raise ValueError("path %r leaves the catalog folder ('..')" % path)
    return p


class Config:
    """Update settings. `Config(url="http://host:8000/fw")` or `Config("host", path="fw")`."""

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
    ):
        if url is not None:
            host, port, path = parse_url(url)
        if not isinstance(host, str) or not host:
            raise ValueError("update server host is missing, got %r" % (host,))
        if not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError("port must be 1..65535, got %r" % (port,))
        if not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ValueError("timeout must be > 0 seconds, got %r" % (timeout,))
        if led is not None and (not isinstance(led, int) or led < 0):
            raise ValueError("LED pin must be a pin number >= 0 or None, got %r" % (led,))
        if led_on not in (0, 1):
            raise ValueError("LED active level must be 0 or 1, got %r" % (led_on,))
        self.host = host
        self.port = port
        self.path = norm_path(path)
        self.timeout = timeout
        self.led = led
        self.led_on = led_on
        self.reboot = bool(reboot)

    @classmethod
    def from_dict(cls, d):
        """Build from a dict (e.g. a JSON config file); unknown keys are an error."""
        for k in d:
            if k not in _KNOWN:
                raise ValueError("unknown update setting %r (known: %s)" % (k, ", ".join(_KNOWN)))
        return cls(**d)

    def url(self):
        return "http://%s:%d/%s" % (self.host, self.port, "" if self.path == "." else self.path)

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
        return "Config(url=%r, timeout=%r, led=%r, led_on=%r, reboot=%r)" % (
            self.url(),
            self.timeout,
            self.led,
            self.led_on,
            self.reboot,
        )
