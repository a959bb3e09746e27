# acupdate.web.start: httpd.start()'s work, done once: the settings, the block buffer made
# while the heap is still in one piece, the listening socket and its httpd.Server, the
# idle watchdog.
# Its code is dropped again once started.
from . import core


def listen(port, user, password, host, update_server, idle):
    """The settings taken (core), the listening socket (non-blocking)."""
    if (user is None) != (password is None):
        raise ValueError("give both user and password for basic auth, or neither")
    if not 0 < idle <= 3600:
        raise ValueError("idle must be 0 < idle <= 3600 seconds, got %r" % (idle,))
    core.idle_ms = int(idle * 1000)
    core.auth = None
    if user is not None:
        import binascii

        cred = binascii.b2a_base64(("%s:%s" % (user, password)).encode()).rstrip()
        core.auth = b"Basic " + cred
    core.server = update_server
    if core.block is None:  # the first start (web.serve keeps the block between two)
        _names()
        core.url = _url()
        core.block = bytearray(4096)
    import socket

    ls = socket.socket()
    ls.setblocking(False)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(socket.getaddrinfo(host, port)[0][-1])
    ls.listen(8)  # pending connections (the network stack's memory, not the heap)
    return ls


# Every module the server loads later (pages, the upload, the UPDATE menu's work with the
# update server): imported once here, and dropped, so that their names are in the
# interpreter's qstr table from the start. The table grows by whole pools (a few KiB in one
# piece) and its strings by small chunks as names come: here, with the heap in one piece,
# rather than in the middle of an update, as islands that split the free space.
_PAGES = (
    "web.pages web.frame web.progressbar web.home web.form web.jobs web.busy web.upload "
    "web.multipart ota.image ota.slots ota.writer ota.errors ota.verify web.menu web.menupages "
    "web.query web.install agent config settings boardconfig download.request http.response "
    "http.client http.url download.catalog download.start download.headers download.resume "
    "download.transfer"
)


def _names():
    import gc

    from .. import loaded, unload

    before = loaded()
    for n in _PAGES.split():
        __import__("acupdate." + n)
        unload(before)
        gc.collect()


def _url():
    # The update server's URL for the pages, or None; its modules are unloaded after.
    from .. import loaded, unload

    before = loaded()
    try:
        from .jobs import server_config

        return server_config().url()
    except Exception:  # (no server: the UPDATE menu says so when it is used)
        return None
    finally:
        unload(before)
