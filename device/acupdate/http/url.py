# acupdate.http.url: an http:// or https:// URL's text taken apart (an
# acupdate.http.client.Url), and a redirect's Location resolved against the request it
# answered.
from micropython import const

from . import Url

_HTTP_PORT = const(8000)  # AutoConnect's update server's port, the default for http
_HTTPS_PORT = const(443)


def parse(text):
    """The Url of 'http[s]://host[:port][/target]'; ValueError saying what is wrong."""
    if not isinstance(text, str):
        raise ValueError("update server URL must be a string, got %r" % (text,))
    scheme, sep, rest = text.partition("://")
    if not sep:
        raise ValueError("update server URL %r has no scheme: use http://host:port/path" % text)
    scheme = scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError("update server URL %r: only http:// and https:// are supported" % text)
    end = len(rest)
    for c in "/?#":
        i = rest.find(c)
        if 0 <= i < end:
            end = i
    host, target = rest[:end], rest[end:]
    tls = scheme == "https"
    port = _HTTPS_PORT if tls else _HTTP_PORT
    i = host.rfind(":")
    if i >= 0 and "]" not in host[i:]:
        try:
            port = int(host[i + 1 :])
        except ValueError:
            raise ValueError(
                "update server URL %r: port %r is not a number" % (text, host[i + 1 :])
            )
        host = host[:i]
    if host[:1] == "[" and host[-1:] == "]":
        host = host[1:-1]
    if not host:
        raise ValueError("update server URL %r has no host" % text)
    if not 0 < port < 65536:
        raise ValueError("update server URL %r: port must be 1..65535, got %d" % (text, port))
    return Url(tls, host, port, target)


def resolve(location, base):
    """The Url a redirect's `location` names, absolute or relative to the Url `base` of the
    request it answered. OSError for a Location that cannot be followed (control
    characters, another scheme, https to http)."""
    location = location.split("#")[0]
    for c in location.encode():
        if c <= 32 or c == 127:
            raise OSError(
                "Redirect to %r: a space or control character in the Location" % location[:80]
            )
    if location.startswith("//"):
        location = ("https:" if base.tls else "http:") + location
    if "://" in location[:8]:
        try:
            url = parse(location)
        except ValueError:
            raise OSError("Redirect to %r: not an http:// or https:// URL" % location[:80])
        if base.tls and not url.tls:
            raise OSError("Refused redirect from https to %s" % url)
        if url.target[:1] != "/":
            url.target = "/" + url.target
        return url
    if location[:1] != "/":
        path = base.target.split("?")[0]
        location = path[: path.rfind("/") + 1] + location
    return Url(base.tls, base.host, base.port, location)
