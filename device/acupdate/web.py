# acupdate.web: the board's update pages, served by one small asyncio HTTP server.
#   import acupdate.web
#   acupdate.web.serve(port=80, user=None, password=None)
# Routes (with user and password: HTTP basic auth on all of them):
#   GET  /                     running slot and version, links
#   GET  /update               the upload form (Arduino HTTPUpdateServer's: file field
#   POST /update                 `firmware`, optional `md5`), streamed into the next slot
#   GET  /_ac/update           AutoConnect's UPDATE menu: the update server's catalog
#   POST /_ac/update_act       install the chosen catalog entry (field `bin`)
#   GET  /_ac/update_progress  {"status", "amount", "size", "name", "error"} as JSON
#   GET  /_ac/update_result    the outcome; after a success the board restarts
# This module is the resident core: the state of the update, its progress answer, serve()'s
# loop. The pages are served by acupdate.webconn (asyncio); their modules are imported per
# request and dropped after. Every update (an upload, the UPDATE menu's catalog query and
# install) runs with that server closed, asyncio out of the heap (acupdate.webjob), then
# the server starts again. The 4096-byte block buffer is made once, at the start.
import gc
import sys


class State:
    """The one update the board runs (or ran last), its progress and outcome. Every
    attribute is set here, so that its dict has its final size from the start (a dict
    that grows later takes a new table wherever the heap has room then)."""

    def __init__(self):
        self.busy = False
        self.kind = ""  # "upload" or "server"
        self.status = "IDLE"  # IDLE START PROGRESS SUCCESS NOAVAIL FAIL
        self.name = ""
        self.amount = 0
        self.size = 0
        self.error = ""
        self.text = ""  # the outcome in words
        self.restarting = False


st = State()
auth = None  # the expected Authorization header value, None: no auth
server = None  # update server: None (/acupdate.json), a URL or an acupdate.config.Config
url = None  # its URL (None: none is set)
block = None  # an update's block buffer
srv = None  # the asyncio Server
job = None  # for serve(), to run with the server closed: (kind, argument), see webjob.run
ls = None  # the listening socket, from the server to the job
held = []  # type: list  # connections the server accepted that had sent nothing: the job's
idle_ms = 20000  # a browser silent this long is dropped


def msg(e):
    """An exception's text for a person."""
    a = e.args[0] if e.args else type(e).__name__
    return "%s (OS error %d)" % (type(e).__name__, a) if isinstance(a, int) else str(a)


def fail(text):
    st.status = "FAIL"
    st.error = st.text = text


def basic(v):
    """An Authorization header's value (bytes) as web.auth has it: the scheme's case does not
    matter (RFC 7617: "basic", "BASIC" are "Basic")."""
    v = v.strip()
    return b"Basic " + v[6:].strip() if v[:6].lower() == b"basic " else v


PROGRESS = b"/_ac/update_progress"
UNAUTHORIZED = "This board's update pages need the right user name and password."


def progress():
    """The update's progress as JSON (AutoConnect's /_ac/update_progress)."""
    import json

    body = '{"status":"%s","amount":%d,"size":%d,"name":%s,"error":%s}' % (
        st.status,
        st.amount,
        st.size,
        json.dumps(st.name),
        json.dumps(st.error),
    )
    return b"200 OK", (body.encode(),), b"application/json"


def drop(*names, clear=False):
    """Forget acupdate submodules: their code leaves the heap at the next collection. With
    clear, their dicts are emptied too (a stale pointer to one of their functions then
    holds nothing more): only for modules that nothing runs or holds any more."""
    from . import forget

    for n in names:
        forget("acupdate." + n, clear)


def serve(port=80, user=None, password=None, host="0.0.0.0", update_server=None, idle=20):
    """Serve the update pages until the board restarts (runs asyncio; does not return).

    user, password: HTTP basic auth for every page. update_server: for the UPDATE menu, a
    URL ('http://host:8000/path'), a Config, or None for /acupdate.json's "server".
    idle: seconds a browser may stay silent before its connection is dropped.

    Every update (an upload; the UPDATE menu's catalog page and install) runs with the
    server closed: asyncio and the request modules leave the heap, synchronous code does it
    (acupdate.webjob) and answers the other browsers meanwhile, then the server starts
    again."""
    global job
    args = (port, user, password, host, update_server, idle)
    keep = [k for k in sys.modules if k.startswith("acupdate.")]
    while True:
        import asyncio

        from . import webconn

        job = None
        asyncio.run(webconn.serve(*args))
        asyncio = webconn = None
        if job is None:
            return
        j, job = job, None
        _calm(keep + ["acupdate.websrc"] if j[0] == "webupload" else keep)  # its Source goes on
        from . import webjob

        webjob.run(j, port, host)
        webjob = j = None
        _calm(keep)


def _calm(keep):
    # The server is closed: what it left (tasks, connections) goes with asyncio's loop;
    # asyncio's modules (frozen: they come back from flash), the connections' and the
    # request modules leave the heap, so that a job has it.
    global srv
    srv = None
    if "asyncio" in sys.modules:
        sys.modules["asyncio"].new_event_loop()
        for k in [k for k in sys.modules if k == "asyncio" or k.startswith("asyncio.")]:
            del sys.modules[k]
    for k in [k for k in sys.modules if k.startswith("acupdate.") and k not in keep]:
        drop(k[9:], clear=True)
    gc.collect()


HTML = b"text/html; charset=utf-8"


async def send(w, code, parts, ctype=HTML, extra=b""):
    """Answer with status `code` (b"200 OK") and body `parts` (bytes pieces)."""
    n = 0
    for p in parts:
        n += len(p)
    w.write(
        b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nCache-Control: no-store\r\n"
        b"Connection: close\r\n%s\r\n" % (code, ctype, n, extra)
    )
    for p in parts:
        w.write(p)
    await w.drain()
