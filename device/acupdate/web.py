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
# This module is the resident core: request heads, auth, the progress endpoint. Pages and
# handlers are imported per request and dropped when no request uses them, so that their
# code leaves the heap; an update's 4096-byte block buffer is made once, at the start.
import asyncio
import gc
import sys
import time

from micropython import const

BUF = const(512)  # per connection: request head lines, then the multipart parser
MAX_CONN = const(8)  # connections served at once (a bound against floods)
DRAIN_MAX = const(4194304)  # a refused body larger than this is not read before answering
# One route a line: method, path, module, its handler(src, w, head); head: (method, path,
# content type, Authorization, Expect: 100-continue).
_ROUTES = b"""GET / webviews home
GET /update webviews form
POST /update webupload post
GET /_ac/update webcat menu
POST /_ac/update_act webcat act
GET /_ac/update_result webpage result"""


# The page of the answers given while an update runs: no page module, the heap is the
# update's. Its <div id=res> is what the upload page's script shows.
_BARE = (
    b'<!DOCTYPE html><meta charset="utf-8"><title>Update running</title><style>body{'
    b"font-family:sans-serif;max-width:36em;margin:2em auto;color:#222}</style><h3>Update "
    b'running</h3><div id="res"><p>'
)


def find(b, sub, s, e):
    """Index of `sub` in b[s:e] (a bytearray), or -1."""
    try:
        return b.find(sub, s, e)
    except AttributeError:  # a port whose bytearray has no find(): search a copy
        i = bytes(memoryview(b)[s:e]).find(sub)
        return i + s if i >= 0 else -1


class State:
    """The one update the board runs (or ran last), its progress and outcome."""

    busy = False
    kind = ""  # "upload" or "server"
    status = "IDLE"  # IDLE START PROGRESS SUCCESS NOAVAIL FAIL
    name = ""
    amount = 0
    size = 0
    error = ""
    text = ""  # the outcome in words
    restarting = False


st = State()
auth = None  # the expected Authorization header value, None: no auth
server = None  # update server: None (/acupdate.json), a URL or an acupdate.config.Config
block = None  # an update's block buffer
idle_ms = 20000  # a browser silent this long is dropped
_active = 0  # requests and tasks using the per-request modules
_before = ()  # the acupdate modules loaded before they began
_reading = []  # type: list  # the Sources of the open connections, for watch()


def msg(e):
    """An exception's text for a person."""
    a = e.args[0] if e.args else type(e).__name__
    return "%s (OS error %d)" % (type(e).__name__, a) if isinstance(a, int) else str(a)


def begin(kind, name):
    st.busy = True
    st.kind = kind
    st.status = "START"
    st.name = name
    st.amount = st.size = 0
    st.error = st.text = ""


def fail(text):
    st.status = "FAIL"
    st.error = st.text = text


def busy():
    """An update runs, or one was installed and the board is about to restart."""
    return st.busy or st.status == "SUCCESS"


async def conflict(src, w, head):
    """409 for a second update, on the bare page."""
    if not head[4]:
        await drain(src)
    if st.status == "SUCCESS":
        why = "An update was installed: the board is restarting. Wait for it to come back."
    else:
        why = "Another update is running (%s of %s: %d of %d bytes). Try again when it ends." % (
            st.kind,
            st.name or "an image",
            st.amount,
            st.size,
        )
    await send(w, b"409 Conflict", (_BARE, why.encode(), b"</p>"))


def drop(*names, clear=False):
    """Forget acupdate submodules: their code leaves the heap at the next collection. With
    clear, their dicts are emptied too (a stale pointer to one of their functions then
    holds nothing more): only for modules that nothing runs or holds any more."""
    import acupdate

    for n in names:
        m = sys.modules.pop("acupdate." + n, None)
        acupdate.__dict__.pop(n, None)
        if clear and m:
            m.__dict__.clear()


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
            drop(k[9:], clear=k[9:12] == "web" or k == "acupdate.multipart")


def serve(port=80, user=None, password=None, host="0.0.0.0", update_server=None, idle=20):
    """Serve the update pages until the board restarts (runs asyncio; does not return).

    user, password: HTTP basic auth for every page. update_server: for the UPDATE menu, a
    URL ('http://host:8000/path'), a Config, or None for /acupdate.json's "server".
    idle: seconds a browser may stay silent before its connection is dropped."""
    asyncio.run(_serve(port, user, password, host, update_server, idle))


async def _serve(*args):
    await (await start(*args)).wait_closed()


async def start(port=80, user=None, password=None, host="0.0.0.0", update_server=None, idle=20):
    """As serve(), inside a running asyncio loop; returns the asyncio Server."""
    from . import webstart

    try:
        return await webstart.start(_conn, port, user, password, host, update_server, idle)
    finally:
        drop("webstart", clear=True)


async def send(w, code, parts, ctype=b"text/html; charset=utf-8", extra=b""):
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


class Source:
    """Reads an asyncio stream through the bytearray `buf`: lines of the head, then at most
    the body's Content-Length (`left`: bytes still to come). Silence for idle_ms: OSError."""

    def __init__(self, stream, buf):
        self.task = asyncio.current_task()
        self.t = None  # when the read under way began (None: not reading)
        self.s = stream
        self.b = buf
        self.mv = memoryview(buf)
        self.p = 0  # next unread byte in buf
        self.n = 0  # end of the bytes in buf
        self.length = -1  # the body's Content-Length, once known
        self.left = -1  # -1: no limit yet (head)

    async def fill(self):
        """Move the unread bytes to the front, read more after them. False at the end of
        the body (or of the stream before one); OSError when the body is cut off."""
        p, n, mv = self.p, self.n, self.mv
        if p:
            mv[: n - p] = mv[p:n]
            self.n = n = n - p
            self.p = 0
        room = len(mv) - n
        if self.left == 0 or not room:
            return False
        if 0 < self.left < room:
            room = self.left
        self.t = time.ticks_ms()
        try:
            k = await self.s.readinto(mv[n : n + room])
        except asyncio.CancelledError:  # by watch()
            raise OSError("the browser sent nothing for %d ms" % idle_ms)
        finally:
            self.t = None
        if not k:
            if self.left > 0:
                raise OSError(
                    "upload cut off: %d of %d bytes came" % (self.length - self.left, self.length)
                )
            return False
        self.n += k
        if self.left > 0:
            self.left -= k
        return True

    async def line(self):
        """(start, end) in buf of the next line, without its LF or CR LF."""
        b = self.b
        while True:
            i = find(b, b"\n", self.p, self.n)
            if i >= 0:
                s = self.p
                self.p = i + 1
                return s, (i - 1 if i > s and b[i - 1] == 13 else i)
            if self.n - self.p == len(b):
                raise ValueError("a request line is longer than %d bytes" % (len(b) - 2))
            if not await self.fill():
                raise ValueError("the request ends inside a line")


async def drain(src, cap=DRAIN_MAX):
    """Read and drop the rest of the body (of a refused request: so that the browser gets
    the answer; unless it is over `cap` bytes). OSError if it is cut off."""
    if src.length <= cap:
        src.p = src.n
        while await src.fill():
            src.p = src.n


async def watch():
    """Cancel the reads of connections silent for idle_ms (a browser gone without a word):
    their Source.fill() turns that into an OSError."""
    while True:
        await asyncio.sleep_ms(min(1000, idle_ms // 2))
        now = time.ticks_ms()
        for src in _reading:
            if src.t is not None and time.ticks_diff(now, src.t) > idle_ms:
                src.t = None
                src.task.cancel()


async def _conn(r, w):
    if len(_reading) >= MAX_CONN:  # more would take the heap an update needs: the browser
        w.close()  # opens another one when it has a request to send
        return await w.wait_closed()
    src = Source(r, bytearray(BUF))
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
        print("acupdate web: request failed:", msg(e))
        try:
            await page("message", w, b"400 Bad Request", "Bad request", msg(e))
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
    if auth is not None and head[3] != auth:
        return await page("refuse", src, w, head, 401)
    path = head[1]
    if path == b"/_ac/update_progress":
        import json

        body = '{"status":"%s","amount":%d,"size":%d,"name":%s,"error":%s}' % (
            st.status,
            st.amount,
            st.size,
            json.dumps(st.name),
            json.dumps(st.error),
        )
        return await send(w, b"200 OK", (body.encode(),), b"application/json")
    if st.busy:  # the heap is the update's: only the cheap answers
        if head[0] == b"POST":
            return await conflict(src, w, head)
        await drain(src)
        return await send(
            w,
            b"503 Service Unavailable",
            (
                b'<meta http-equiv="refresh" content="5">',
                _BARE,
                b"An update is running: this page comes back when it has ended (its progress: "
                b'<a href="/_ac/update_progress">/_ac/update_progress</a>).</p>',
            ),
            extra=b"Retry-After: 5\r\n",
        )
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
