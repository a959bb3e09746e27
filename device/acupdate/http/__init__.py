# acupdate.http: the HTTP/1.1 client the agent talks to the update server with: client (a
# request and its reply's head), response (the body, the Deadline), url (a URL's text, a
# redirect's Location), tls (the CA file for https); Url, where a request goes.


class Url:
    """Where a request goes: tls (True for https), host, port, target ('/path?query', or
    '' for none). acupdate.http.url makes one from a URL's text."""

    def __init__(self, tls, host, port, target):
        self.tls = tls
        self.host = host
        self.port = port
        self.target = target

    def __str__(self):
        return "%s://%s:%d%s" % ("https" if self.tls else "http", self.host, self.port, self.target)
