# acupdate.web.httpd: the web server's connections (acupdate.web's asyncio phase): the accept
# loop (Server), request heads read through one small buffer per connection (BUF bytes, from
# a pool made at the start: a longer line, more than 64 headers or chunked bodies are
# refused), basic auth, the routes, the idle watchdog, the per-request modules' loading and
# unloading, and the hand-over of an update to a job (step_aside()). It leaves the heap with
# asyncio while the server is closed for a job (acupdate.web.serve).
# No client can take the server down: a new connection costs a socket and a small task until
# its first bytes come (at most MAX_WAIT such; past that the one silent for longest is
# closed, or the new one gets a static 503 when all have sent their requests); then it is
# served with a buffer from the pool, at most MAX_CONN at once (the others wait for one).
# Whatever a connection raises ends that connection only (a MemoryError: the static 503),
# with its modules unloaded and its buffer back in the pool.
import asyncio
import gc
import sys
import time

from micropython import const

from . import core
from .source import DRAIN_MAX, Source, find

BUF = const(512)  # per connection: request head lines, then the multipart parser
MAX_CONN = const(4)  # connections served at once (their cost is bounded: a flood waits)
MAX_WAIT = const(4)  # connections accepted and waiting for their first bytes or a buffer
# The paths the routes serve (another method on one of them: 405).
_PATHS = (b"/", b"/update", b"/_ac/update", b"/_ac/update_act", b"/_ac/update_result")


_active = 0  # requests and tasks using the per-request modules
_before = ()  # the acupdate modules loaded before they began
_bufs = [bytearray(BUF) for _ in range(MAX_CONN)]  # the connections' buffers, made once
_users = [None] * MAX_CONN  # type: list  # _bufs[i]'s connection: its Source, 0 (starting)
# or None (free); fixed lists: taking or giving a buffer back allocates nothing
_waiting = []  # type: list  # accepted, not yet served: [socket, its wait task or None, ms]
_serving = 0  # connections being served (their tasks)
_scratch = bytearray(256)  # what a refused request sent, read and dropped


async def upload(src, w):
    """POST /update: refused here (409, 411, 413), else the browser's connection is handed
    to acupdate.web.jobs, which reads the upload with the server closed (web.serve)."""
    n = src.length
    if core.busy():
        from .busy import conflict

        return await conflict(src, w)
    if n <= 0 or n > DRAIN_MAX:
        return await _refusal_page(src, w, 411 if n <= 0 else 413)
    core.begin("upload", "")
    src.s = w.s  # the browser's socket: nothing of asyncio's goes with the request
    src.task = None
    w.s = None  # the connection is jobs's now (its close() here closes nothing)
    core.step_aside("upload", src)


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
            core.drop(k[9:], clear=k.startswith("acupdate.web."))


async def serve(*args):
    await (await start(*args)).wait_closed()


async def start(port=80, user=None, password=None, host="0.0.0.0", update_server=None, idle=20):
    """The server, started in a running asyncio loop (serve()'s): a Server, with the idle
    watchdog."""
    from .start import listen

    try:
        ls = listen(port, user, password, host, update_server, idle)
    finally:
        core.drop("web.start", clear=True)
    core.srv = Server(ls)
    asyncio.create_task(watch())
    await asyncio.sleep(0)  # its accept loop waits on the socket: close() may cancel it
    print("acupdate web: serving on http://%s:%d/" % (host, port))
    return core.srv


class Server:
    """Accepts the connections on the listening socket `ls` (asyncio's start_server() would
    die on a MemoryError in its accept loop, and takes every connection)."""

    def __init__(self, ls):
        self.s = ls
        self.task = asyncio.create_task(_accept(ls))  # type: ignore[arg-type]

    def close(self):
        self.task.cancel()

    async def wait_closed(self):
        """The accept loop ends; the connections being served end first (a second upload
        gets its 409). For a job (step_aside), the listening socket and the connections
        that have sent nothing yet go on to it (core.ls, core.held): none is reset."""
        try:
            await self.task
        except asyncio.CancelledError:
            pass
        while _serving:
            await asyncio.sleep_ms(10)
        # core.held, not a new list: made when core was imported, low in the heap (room for
        # MAX_WAIT sockets); one made now would stay above the job's free space, an island
        # splitting it (the UPDATE menu's https install then had no 3 KiB piece for TLS)
        held = core.held
        for one in _waiting:
            one[1].cancel()  # (off the poller: the socket is jobs's)
            held.append(one[0])
        del _waiting[:]
        if core.job is None:
            for s in held:
                s.close()
            del held[:]
            self.s.close()
        else:
            core.ls = self.s


def _readable(s):
    # Wait until `s` has bytes to read (or is closed by the browser).
    yield asyncio.core._io_queue.queue_read(s)  # type: ignore[attr-defined]


def _accept(ls):
    # Server's task (a generator, as asyncio's own accept loop: it waits on the socket).
    while True:
        try:
            yield from _readable(ls)
        except asyncio.CancelledError:  # Server.close(): wait_closed() does the rest
            return
        s = None
        try:
            s = ls.accept()[0]
            s.setblocking(False)
            if len(_waiting) >= MAX_WAIT and not _drop_idle():
                # every waiting connection has sent its request: this one would wait too long
                _refuse_busy(s)
            else:
                one = [s, None, time.ticks_ms()]  # socket, its wait, accepted at
                _waiting.append(one)
                try:
                    one[1] = asyncio.create_task(_wait(one))
                except Exception:
                    _waiting.remove(one)
                    raise
        except Exception as e:  # MemoryError too: this connection only
            print("acupdate web: connection refused:", core.msg(e))
            if s:
                s.close()
            s = None
            gc.collect()


def _drop_idle():
    """Close the connection that has sent nothing for longest (a browser's unused
    preconnect): room for a new one. False if every waiting one has sent its request."""
    for one in _waiting:
        if one[1] is not None:
            _waiting.remove(one)
            one[1].cancel()  # (its wait is off the poller: the socket may close now)
            one[0].close()
            return True
    return False


async def _wait(one):
    # A new connection's task: waits for its first bytes at the cost of a socket and this
    # task, then serves it with a free buffer, or leaves it in _waiting for one: the task
    # that frees a buffer serves it next.
    try:
        await _readable(one[0])
    except asyncio.CancelledError:  # dropped for room or silent for idle_ms (closed there)
        return
    global _serving
    one[1] = None  # it has sent something
    i = _take()
    if i < 0:
        return
    _waiting.remove(one)
    _serving += 1
    s = one[0]
    try:
        while s:
            try:
                if not await conn(s, i):
                    return  # (an upload: its buffer goes on with it to jobs)
            except Exception as e:  # MemoryError before its request was read: this one only
                print("acupdate web: connection refused:", core.msg(e))
                _refuse_busy(s)
                gc.collect()
            s = None
            for one in _waiting:
                if one[1] is None:  # the oldest that has sent its request
                    _waiting.remove(one)
                    s = one[0]
                    break
        _users[i] = None
    finally:
        _serving -= 1


def _take():
    # The index of a free buffer (now taken), or -1.
    for i in range(MAX_CONN):
        if _users[i] is None:
            _users[i] = 0
            return i
    return -1


def _refuse_busy(s):
    # 503 on a fresh non-blocking socket (its send buffer is empty): no task, no buffer.
    try:
        s.write(core.BUSY)
    except OSError:
        pass
    _discard(s)
    s.close()


def _discard(s):
    # Read and drop what a refused request sent so far (at most 32 reads): closing a socket
    # with unread bytes resets the connection, and the browser may lose the answer.
    try:
        for _ in range(32):
            if not s.readinto(_scratch):  # (None: nothing more has come; 0: the end)
                return
    except OSError:
        pass


async def watch():
    """Cancel the reads of connections silent for idle_ms (a browser gone without a word),
    and of request heads not complete idle_ms after their first byte (a client that sends
    its head a byte at a time keeps a connection buffer, whose number is bounded): their
    Source.fill() turns that into an OSError; close the connections that have sent nothing
    for idle_ms."""
    while True:
        await asyncio.sleep_ms(min(1000, core.idle_ms // 2))
        now = time.ticks_ms()
        for src in _users:
            if not src or src.t is None:
                continue
            if time.ticks_diff(now, src.t) > core.idle_ms:
                src.late = core.idle_ms  # Source.fill() says so
            elif src.left < 0 and time.ticks_diff(now, src.t0) > core.idle_ms:  # in the head
                src.late = -core.idle_ms
            else:
                continue
            src.t = None
            src.task.cancel()
        for one in _waiting:
            if one[1] is not None and time.ticks_diff(now, one[2]) > core.idle_ms:
                _waiting.remove(one)
                one[1].cancel()
                one[0].close()
                break  # (the list changed: the others at the next round)


async def conn(s, i):
    """Serve one request read from the socket `s` with the buffer _bufs[i]; False if its
    connection and buffer went on to a job (an upload). Raises (a MemoryError) only before
    the request was read."""
    w = asyncio.StreamReader(s)
    src = Source(w, _bufs[i])
    src.t0 = time.ticks_ms()
    src.task = asyncio.current_task()
    enter()
    _users[i] = src
    try:
        s, e = await src.line()
        line = bytes(src.mv[s:e]).split(b" ")
        if len(line) != 3 or not line[2].startswith(b"HTTP/1."):
            raise ValueError("bad HTTP request line %r" % bytes(src.mv[s:e])[:60])
        src.method = line[0]
        src.path = line[1].split(b"?")[0]
        line = None
        length = 0
        cred = b""
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
                src.ctype = v.decode()
            elif name == b"authorization":
                cred = core.basic(v)
            elif name == b"expect":
                src.expect_continue = v.lower() == b"100-continue"
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
        await _route(src, w, cred)
    except Exception as e:  # a browser gone or garbage in: answer if possible, keep serving
        print("acupdate web: request failed:", core.msg(e))
        gc.collect()
        try:
            if isinstance(e, MemoryError):  # the board's overload, not the request's fault:
                w.s.write(core.BUSY)  # the answer that needs no heap
            else:
                from .pages import message

                await message(w, b"400 Bad Request", "Bad request", core.msg(e))
            _discard(w.s)
        except Exception:
            pass
    finally:
        _users[i] = 0
        leave()
        try:
            w.close()
            await w.wait_closed()
        except Exception:
            pass
    return src.s is w  # (an upload: src reads the socket itself now, in a job)


async def _refusal_page(src, w, code):
    # The refusal page of `code` (401, 404, 405, 411, 413): acupdate.web.pages.refuse.
    from .pages import refuse

    await refuse(src, w, code)


async def _room():
    """The heap is short for a request that came: the connections that have sent nothing
    are closed (they go after it), their tasks end, the heap is collected. False if there
    were none."""
    if not _drop_idle():
        return False
    while _drop_idle():
        pass
    await asyncio.sleep_ms(0)  # (their cancelled tasks end: their frames become garbage)
    gc.collect()
    return True


async def _route(src, w, cred):
    # Serve the request whose head src holds (`cred`: its basic auth credentials).
    if core.auth is not None and cred != core.auth:
        return await _refusal_page(src, w, 401)
    path = src.path
    if path == core.PROGRESS:
        return await core.send(w, *core.progress())
    gc.collect()  # the handler's code goes to the lowest free space: less scatter
    try:
        fn = _handler(src.method, path)
    except MemoryError:
        if not await _room():
            raise
        fn = _handler(src.method, path)
    if fn is None:
        return await _refusal_page(src, w, 405 if path in _PATHS else 404)
    if src.method != b"GET":
        return await fn(src, w)
    try:  # (a page is written whole at its end: a MemoryError comes before)
        return await fn(src, w)
    except MemoryError:
        if not await _room():
            raise
        return await fn(src, w)


def _handler(method, path):
    # The handler(src, w) of `method` `path`, its module imported now (leave() drops
    # it after the request), or None.
    if method == b"GET":
        if path == b"/":
            from .home import home

            return home
        if path == b"/update":
            from .form import form

            return form
        if path == b"/_ac/update":
            from .menu import menu

            return menu
        if path == b"/_ac/update_result":
            from .pages import result

            return result
    elif method == b"POST":
        if path == b"/update":
            return upload
        if path == b"/_ac/update_act":
            from .menu import act

            return act
    return None
