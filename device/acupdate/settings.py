# acupdate.settings: the checks of Config's settings, each refusal naming the setting and
# the value it got. Config() runs them in a Phase of its own, so that this code and its
# texts are not in the heap during an update.
from micropython import const

_DEADLINE = const(600)  # seconds for a whole update
_CATALOG_DEADLINE = const(60)  # seconds for a catalog query
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
    "catalog_deadline",
    "retries",
    "backoff",
)


def norm_path(path):
    """The catalog folder as the server's `path` query wants it: relative, no edge
    slashes, '.' for the root."""
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


def server_url(url):
    """The Url of an update server's URL text: its target is the catalog folder, no query
    or fragment."""
    from .http.url import parse

    u = parse(url)
    if "?" in u.target or "#" in u.target:
        raise ValueError("update server URL %r: a query or fragment is not allowed" % url)
    return u


def check(host, port, path, timeout, led, led_on, reboot, url, kw):
    """Check Config.__init__'s arguments (`kw`: its other keyword arguments): the settings
    as (name, value) pairs, connect_timeout resolved, user and password turned into the
    Authorization header line `auth`."""
    for k in kw:
        if k not in _KNOWN:
            raise ValueError("unknown update setting %r (known: %s)" % (k, ", ".join(_KNOWN)))
    tls = kw.get("tls", False)
    ca = kw.get("ca")
    user = kw.get("user")
    password = kw.get("password")
    connect_timeout = kw.get("connect_timeout")
    deadline = kw.get("deadline", _DEADLINE)
    catalog_deadline = kw.get("catalog_deadline", _CATALOG_DEADLINE)
    retries = kw.get("retries", 3)
    backoff = kw.get("backoff", 0.5)
    if url is not None:
        u = server_url(url)
        tls, host, port, path = u.tls, u.host, u.port, u.target or "."
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
        ("catalog_deadline", catalog_deadline),
    ):
        if not isinstance(v, (int, float)) or not 0 < v < 1e9:  # (NaN is not)
            raise ValueError("%s must be > 0 seconds, got %r" % (k, v))
    if not isinstance(retries, int) or retries < 0:
        raise ValueError("retries must be a count >= 0, got %r" % (retries,))
    if not isinstance(backoff, (int, float)) or not 0 <= backoff < 1e9:
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
        ("catalog_deadline", catalog_deadline),
        ("retries", retries),
        ("backoff", backoff),
    )
