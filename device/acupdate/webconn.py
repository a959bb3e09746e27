# acupdate.webconn: the web server's connections (acupdate.web's asyncio phase): the accept
# loop (Server), request heads read through one small buffer per connection (BUF bytes, from
# a pool made at the start: a longer line, more than 64 headers or chunked bodies are
# refused), basic auth, the routes, the idle watchdog, the per-request modules' loading and
# unloading, and the hand-over of an update to a job (step_aside()). It leaves the heap with
# asyncio while the server is closed for a job (acupdate.web.serve).
# No client can take the server down: at most MAX_CONN connections are served at once (a
# new one past that takes the place of the oldest still waiting for its request head, else
# it gets a 503 and is closed), and whatever a connection raises (MemoryError too) ends that
# connection only, with its modules unloaded and its buffer back in the pool.
import asyncio
import gc
import sys
import time

from micropython import const

from . import web
from .websrc import DRAIN_MAX, Source, drain, find

BUF = const(512)  # per connection: request head lines, then the multipart parser
MAX_CONN = const(4)  # connections served at once (their cost is bounded: a flood waits)
# The answer past MAX_CONN when every connection is busy: no page module, no allocation.
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 33\r\n"
    b"Retry-After: 1\r\nConnection: close\r\n\r\nToo many connections: try again.\r\n"
)
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
_reading = []  # type: list  # the Sources of the open connections, oldest first
_free = [bytearray(BUF) for _ in range(MAX_CONN)]  # the connections' buffers, made once


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
    """The server, started in a running asyncio loop (serve()'s): a Server."""
    from . import webstart

    try:
        web.srv = await webstart.start(port, user, password, host, update_server, idle)
        return web.srv
    finally:
        web.drop("webstart", clear=True)


class Server:
    """Accepts the connections on the listening socket `ls` (asyncio's start_server() would
    die on a MemoryError in its accept loop, and takes every connection)."""

    def __init__(self, ls):
        self.s = ls
        self.task = asyncio.create_task(_accept(ls))  # type: ignore[arg-type]

    def close(self):
        self.task.cancel()

    async def wait_closed(self):
        try:
            await self.task
        except asyncio.CancelledError:
            pass
        self.s.close()


def _accept(ls):
    # Server's task (a generator, as asyncio's own accept loop: it waits on the socket).
    wait = asyncio.core._io_queue.queue_read  # type: ignore[attr-defined]
    while True:
        try:
            yield wait(ls)
        except asyncio.CancelledError:  # Server.close()
            ls.close()
            return
        s = None
        try:
            s = ls.accept()[0]
            s.setblocking(False)
            buf = _slot()
            if buf is None:
                _refuse(s)
            else:
                st = asyncio.StreamReader(s)
                asyncio.create_task(conn(st, buf))
        except Exception as e:  # MemoryError too: this connection only
            print("acupdate web: connection refused:", web.msg(e))
            if s:
                s.close()
            s = None
            gc.collect()


def _slot():
    """A buffer for a new connection: a free one, else the one of the oldest connection
    still waiting for its request head (a browser's unused preconnect; it is closed),
    else None."""
    if len(_reading) < MAX_CONN and _free:
        return _free.pop()
    for src in _reading:
        if src.left < 0 and src.t is not None:
            _reading.remove(src)
            src.late = -1  # Source.fill() says so; conn() closes it without an answer
            src.task.cancel()
            return src.b
    return None


def _refuse(s):
    # 503 on a fresh non-blocking socket (its send buffer is empty): no task, no buffer.
    try:
        s.write(_BUSY)
    except OSError:
        pass
    _discard(s)
    s.close()


def _discard(s):
    # Read and drop what a refused request sent so far (at most 16 reads): closing a socket
    # with unread bytes resets the connection, and the browser may lose the answer.
    try:
        for _ in range(16):
            if not s.read(BUF):  # (None: nothing more has come; b"": the end)
                return
    except OSError:
        pass


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


async def conn(w, buf):
    src = Source(w, buf)
    src.task = asyncio.current_task()
    _reading.append(src)
    enter()
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
                cred = web.basic(v)
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
        await _route(src, w, (line[0], line[1].split(b"?")[0], ctype, cred, cont))
    except Exception as e:  # a browser gone or garbage in: answer if possible, keep serving
        if src.late >= 0:  # (not a connection dropped for a newer one)
            print("acupdate web: request failed:", web.msg(e))
            gc.collect()
            try:
                if isinstance(e, MemoryError):  # the board's overload, not the request's fault
                    await page("message", w, b"503 Service Unavailable", "Busy", web.msg(e))
                else:
                    await page("message", w, b"400 Bad Request", "Bad request", web.msg(e))
                _discard(w.s)
            except Exception:
                pass
    finally:
        if src in _reading:  # (a dropped one's buffer went to the newer one)
            _reading.remove(src)
            if src.s:  # (an upload's buffer goes on with it to webjob)
                _free.append(buf)
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
