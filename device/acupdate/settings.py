# acupdate.settings: the checks of a Config's settings and the URL parsing (the update
# server's URL, a redirect's Location). Loaded only while a Config is made or a redirect
# is followed (acupdate.config.cold), so that its code and texts are not in the heap
# during an update.
from micropython import const

_PORT = const(8000)
_KNOWN = (
    "host",
    "port",
    "path",
    "timeout",
    "led",
    "led_on",
    "reboot",
    "url",
    "tls",
    "ca",
    "user",
    "password",
    "connect_timeout",
    "deadline",
    "retries",
    "backoff",
)


def split(url):
    """'http[s]://host[:port][/rest]' -> (tls, host, port, '/rest' or ''); port 8000 for
    http (AutoConnect's), 443 for https."""
    if not isinstance(url, str):
        raise ValueError("update server URL must be a string, got %r" % (url,))
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError("update server URL %r has no scheme: use http://host:port/path" % url)
    scheme = scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError("update server URL %r: only http:// and https:// are supported" % url)
    i = len(rest)
    for c in "/?#":
        j = rest.find(c)
        if 0 <= j < i:
            i = j
    host, rest = rest[:i], rest[i:]
    tls = scheme == "https"
    port = 443 if tls else _PORT
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
    return tls, host, port, rest


def parse_url(url):
    """'http[s]://host[:port][/path]' -> (host, port, path); path '.' when absent."""
    host, port, path = split(url)[1:]
    if "?" in path or "#" in path:
        raise ValueError("update server URL %r: a query or fragment is not allowed" % url)
    return host, port, path or "."


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


def check(host, port, path, timeout, led, led_on, reboot, url, kw):
    """Check Config.__init__'s arguments (`kw`: its other keyword arguments); the Config's
    attributes, as a list of (name, value) pairs (connect_timeout resolved, user and
    password as the Authorization header line `auth`)."""
    for k in kw:
        if k not in _KNOWN:
            raise ValueError("unknown update setting %r (known: %s)" % (k, ", ".join(_KNOWN)))
    tls = kw.get("tls", False)
    ca = kw.get("ca")
    user = kw.get("user")
    password = kw.get("password")
    connect_timeout = kw.get("connect_timeout")
    deadline = kw.get("deadline", 600)
    retries = kw.get("retries", 3)
    backoff = kw.get("backoff", 0.5)
    if url is not None:
        tls = split(url)[0]
        host, port, path = parse_url(url)
    if not isinstance(host, str) or not host:
        raise ValueError("update server host is missing, got %r" % (host,))
    if not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError("port must be 1..65535, got %r" % (port,))
    if connect_timeout is None:
        connect_timeout = timeout
    for k, v in (
        ("timeout", timeout),
        ("connect_timeout", connect_timeout),
        ("deadline", deadline),
    ):
        if not isinstance(v, (int, float)) or v <= 0:
            raise ValueError("%s must be > 0 seconds, got %r" % (k, v))
    if not isinstance(retries, int) or retries < 0:
        raise ValueError("retries must be a count >= 0, got %r" % (retries,))
    if not isinstance(backoff, (int, float)) or backoff < 0:
        raise ValueError("backoff must be >= 0 seconds, got %r" % (backoff,))
    if led is not None and (not isinstance(led, int) or led < 0):
        raise ValueError("LED pin must be a pin number >= 0 or None, got %r" % (led,))
    if led_on not in (0, 1):
        raise ValueError("LED active level must be 0 or 1, got %r" % (led_on,))
    if ca is not None and (not isinstance(ca, str) or not ca):
        raise ValueError("ca must be the path of a CA certificate file, got %r" % (ca,))
    if tls and ca is None:
        raise ValueError(
            "https needs ca='/file' on the board: the CA certificate that signed the "
            "server's (DER or PEM)"
        )
    auth = None
    if user is not None or password is not None:
        if not isinstance(user, str) or not user or ":" in user:
            raise ValueError("user must be a name without ':', got %r" % (user,))
        if not isinstance(password, str):
            raise ValueError("password must be a string (user %r)" % user)
        import binascii

        b = binascii.b2a_base64((user + ":" + password).encode(), newline=False)
        auth = b"Authorization: Basic %s\r\n" % b
    return (
        ("host", host),
        ("port", port),
        ("path", norm_path(path)),
        ("timeout", timeout),
        ("led", led),
        ("led_on", led_on),
        ("reboot", bool(reboot)),
        ("tls", bool(tls)),
        ("ca", ca),
        ("user", user),
        ("auth", auth),
        ("connect_timeout", connect_timeout),
        ("deadline", deadline),
        ("retries", retries),
        ("backoff", backoff),
    )


def where(loc, tls, host, port, target):
    """(tls, host, port, target) that a redirect's Location names, absolute (never from
    https to http) or relative to `target` (for acupdate.download.request, which loads this module
    only for a redirect)."""
    loc = loc.split("#")[0]
    for c in loc.encode():
        if c <= 32 or c == 127:
            raise OSError("Redirect to %r: a space or control character in the Location" % loc[:80])
    if loc.startswith("//"):
        loc = ("https:" if tls else "http:") + loc
    if "://" in loc[:8]:
        was = tls
        try:
            tls, host, port, loc = split(loc)
        except ValueError:
            raise OSError("Redirect to %r: not an http:// or https:// URL" % loc[:80])
        if was and not tls:
            raise OSError("Refused redirect from https to http://%s:%d%s" % (host, port, loc))
        if loc[:1] != "/":
            loc = "/" + loc
    elif loc[:1] != "/":
        t = target.split("?")[0]
        loc = t[: t.rfind("/") + 1] + loc
    return tls, host, port, loc
