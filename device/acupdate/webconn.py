# acupdate.webconn: the web server's connections (acupdate.web's asyncio phase): request
# heads read through one small buffer per connection (BUF bytes: a longer line, more than 64
# headers or chunked bodies are refused), basic auth, the routes, the idle watchdog, the
# per-request modules' loading and unloading, and the hand-over of an update to a job
# (step_aside()). It leaves the heap with asyncio while the server is closed for a job
# (acupdate.web.serve).
import asyncio
import gc
import sys
import time

from micropython import const

from . import web
from .websrc import DRAIN_MAX, Source, drain, find

BUF = const(512)  # per connection: request head lines, then the multipart parser
MAX_CONN = const(8)  # connections served at once (a bound against floods)
# One route a line: method, path, module, its handler(src, w, head); head: (method, path,
# content type, Authorization, Expect: 100-continue).
_ROUTES = b"""GET / webviews home
GET /update webviews form
POST /update webconn upload
GET /_ac/update webcat menu
POST /_ac/update_act webcat act
GET /_ac/update_result webpage result"""


_active = 0  # requests and tasks using the per-request modules
_before = ()  # the acupdate modules loaded before they began
_reading = []  # type: list  # the Sources of the open connections, for watch()


async def upload(src, w, head):
    """POST /update: refused here (409, 411, 413), else the browser's connection is handed
    to acupdate.webjob, which reads the upload with the server closed (web.serve)."""
    n = src.length
    if busy():
        return await conflict(src, w, head)
    if n <= 0 or n > DRAIN_MAX:
        return await page("refuse", src, w, head, 411 if n <= 0 else 413)
    begin("upload", "")
    sock = w.s
    w.s = None  # the connection is webjob's now (its close() here closes nothing)
    src.s = src.task = None  # nothing of asyncio's goes with it
    step_aside("webupload", (src, sock, head))


async def conflict(src, w, head):
    """409 for a second update (while the board restarts into the last one: during an
    update this server is closed and acupdate.webjob answers)."""
    if not head[4]:
        await drain(src)
    from .webbusy import conflicting

    await web.send(w, *conflicting())


def begin(kind, name):
    """An update begins: web.st says so from now on."""
    st = web.st
    st.busy = True
    st.kind = kind
    st.status = "START"
    st.name = name
    st.amount = st.size = 0
    st.error = st.text = ""


def busy():
    """An update runs, or one was installed and the board is about to restart."""
    return web.st.busy or web.st.status == "SUCCESS" or web.job is not None


def step_aside(kind, arg):
    """Close the server for a job: web.serve() runs acupdate.<kind>.job(arg, ...) (see
    acupdate.webjob), then starts the server again."""
    web.job = (kind, arg)
    web.srv.close()


def enter():
    """A request or task begins: it may import per-request modules."""
    global _active, _before
    if not _active:
        _before = [k for k in sys.modules if k.startswith("acupdate.")]
    _active += 1


def leave():
    """It ended: when none is left, drop the acupdate modules loaded since the first began
    (the web modules' dicts emptied too: nothing else uses them)."""
    global _active
    _active -= 1
    if not _active:
        for k in [k for k in sys.modules if k.startswith("acupdate.") and k not in _before]:
            web.drop(k[9:], clear=k[9:12] == "web" or k == "acupdate.multipart")


async def serve(*args):
    await (await start(*args)).wait_closed()


async def start(port=80, user=None, password=None, host="0.0.0.0", update_server=None, idle=20):
    """The server, started in a running asyncio loop (serve()'s): the asyncio Server."""
    from . import webstart

    try:
        web.srv = await webstart.start(conn, port, user, password, host, update_server, idle)
        return web.srv
    finally:
        web.drop("webstart", clear=True)


async def watch():
    """Cancel the reads of connections silent for idle_ms (a browser gone without a word):
    their Source.fill() turns that into an OSError."""
    while True:
        await asyncio.sleep_ms(min(1000, web.idle_ms // 2))
        now = time.ticks_ms()
        for src in _reading:
            if src.t is not None and time.ticks_diff(now, src.t) > web.idle_ms:
                src.t = None
                src.late = web.idle_ms  # Source.fill() says so
                src.task.cancel()


async def conn(r, w):
    if len(_reading) >= MAX_CONN:  # more would take the heap an update needs: the browser
        w.close()  # opens another one when it has a request to send
        return await w.wait_closed()
    src = Source(r, bytearray(BUF))
    src.task = asyncio.current_task()
    _reading.append(src)
    head = None
    try:
        s, e = await src.line()
        line = bytes(src.mv[s:e]).split(b" ")
        if len(line) != 3 or not line[2].startswith(b"HTTP/1."):
            raise ValueError("bad HTTP request line %r" % bytes(src.mv[s:e])[:60])
        length = 0
        ctype = ""
        cred = b""
        cont = False
        for _ in range(64):
            s, e = await src.line()
            if s == e:
                break
            c = find(src.b, b":", s, e)
            if c < 0:
                raise ValueError("bad HTTP header line %r" % bytes(src.mv[s:e])[:60])
            name = bytes(src.mv[s:c]).strip().lower()
            v = bytes(src.mv[c + 1 : e]).strip()
            if name == b"content-length":
                length = int(v)
            elif name == b"content-type":
                ctype = v.decode()
            elif name == b"authorization":
                cred = v
            elif name == b"expect":
                cont = v.lower() == b"100-continue"
            elif name == b"transfer-encoding":
                raise ValueError("send the request with a Content-Length, not chunked")
        else:
            raise ValueError("more than 64 HTTP header lines")
        have = src.n - src.p  # body bytes already read with the head
        if have > length:
            src.n = src.p + length
            have = length
        src.length = length
        src.left = length - have
        head = (line[0], line[1].split(b"?")[0], ctype, cred, cont)
        enter()
        await _route(src, w, head)
    except Exception as e:  # a browser gone or garbage in: answer if possible, keep serving
        print("acupdate web: request failed:", web.msg(e))
        try:
            await page("message", w, b"400 Bad Request", "Bad request", web.msg(e))
        except Exception:
            pass
    finally:
        _reading.remove(src)
        if head:
            leave()
        try:
            w.close()
            await w.wait_closed()
        except Exception:
            pass


async def page(fn, *args):
    """Call webpage.fn(*args)."""
    from . import webpage

    await getattr(webpage, fn)(*args)


async def _route(src, w, head):
    if web.auth is not None and head[3] != web.auth:
        return await page("refuse", src, w, head, 401)
    path = head[1]
    if path == web.PROGRESS:
        return await web.send(w, *web.progress())
    code = 404
    for line in _ROUTES.split(b"\n"):
        m, p, mod, fn = line.split()
        if p == path:
            if m == head[0]:
                mod = "acupdate." + mod.decode()
                gc.collect()  # the handler's code goes to the lowest free space: less scatter
                __import__(mod)
                return await getattr(sys.modules[mod], fn.decode())(src, w, head)
            code = 405
    await page("refuse", src, w, head, code)
