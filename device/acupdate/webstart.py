# acupdate.webstart: web.start()'s work, done once: the settings, the block buffer made
# while the heap is still in one piece, the listening server, the idle watchdog.
# Its code is dropped again once started.
import asyncio

from . import web


async def start(conn, port, user, password, host, update_server, idle):
    if (user is None) != (password is None):
        raise ValueError("give both user and password for basic auth, or neither")
    if not 0 < idle <= 3600:
        raise ValueError("idle must be 0 < idle <= 3600 seconds, got %r" % (idle,))
    web.idle_ms = int(idle * 1000)
    web.auth = None
    if user is not None:
        import binascii

        cred = binascii.b2a_base64(("%s:%s" % (user, password)).encode()).rstrip()
        web.auth = b"Basic " + cred
    web.server = update_server
    _names()
    if web.block is None:
        web.block = bytearray(4096)
    srv = await asyncio.start_server(conn, host, port)
    asyncio.create_task(web.watch())
    print("acupdate web: serving on http://%s:%d/" % (host, port))
    return srv


# The modules of the pages and the upload: imported once here, and dropped, so that their
# names are in the interpreter's qstr table from the start. The table grows by whole pools
# (a few KiB in one piece) as names come: that happens here, with the heap in one piece,
# rather than in the middle of an upload, when no such piece may be left.
_PAGES = ("webpage", "webbar", "webviews", "webupload", "multipart", "imagecheck", "slots", "ota")


def _names():
    import gc

    from . import loaded, unload

    before = loaded()
    for n in _PAGES:
        __import__("acupdate." + n)
        unload(before)
        gc.collect()
