# acupdate.web.jobs: the updates, done while the web server is closed (web.serve): asyncio
# and the request modules are out of the heap, which the update's code has. A job is
# (kind, argument); the job(argument, listening socket) of acupdate.web.<kind> does it:
# upload (a browser's upload, read from the connection the server handed over), query (the
# UPDATE menu's catalog page), install (its install from the update server). Meanwhile the
# other browsers' requests are answered on the server's port between two reads (answer()),
# as AutoConnect's update answers them with handleClient(): the progress, and
# (acupdate.web.busy, loaded for it) 409 for a second update, 503 for a page.
import gc
import socket

from micropython import const

from . import core

_LINES = const(64)  # request head lines read at most
_TIMEOUT = const(2)  # seconds a browser has for its request head
_LINE = const(256)  # bytes of a request head's line kept
_DROP = const(64)  # bytes a refused body is read and dropped by


class Out:
    """A stream for core.send() on a plain socket: drain() never waits, so that a page's
    coroutine runs to its end in one step (complete())."""

    def __init__(self, s):
        self.s = s

    def write(self, b):
        self.s.write(b)

    async def drain(self):
        pass


def complete(coro):
    """Run a coroutine that never waits (its streams are plain sockets); its result."""
    try:
        coro.send(None)
    except StopIteration as e:
        return e.value
    raise OSError("a page waited on a closed server")


def run(kind, arg, port, host, find):
    """Do the job `kind` with its argument `arg` (core.step_aside's) for the server on
    `host`:`port`; find(kind) imports the job's module and gives its job(arg, listening
    socket) (acupdate.web's _job: upload, query or install)."""
    from .. import loaded, unload

    before = loaded()
    ls, core.ls = core.ls, None  # the server's (what waits on it is answered, not reset)
    try:
        if ls is None:
            ls = socket.socket()
            ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            ls.bind(socket.getaddrinfo(host, port)[0][-1])
            ls.listen(8)
            ls.setblocking(False)
        find(kind)(arg, ls)
    except Exception as e:  # MemoryError too: the server comes back all the same
        print("acupdate web: %s failed: %s" % (kind, core.msg(e)))
        if core.st.busy:
            core.fail(core.msg(e))
            core.st.busy = False
    finally:
        if ls:
            answer(ls)  # those waiting: answered, not reset by the close
            ls.close()
        for c in core.held:  # silent for the whole job
            c.close()
        del core.held[:]  # (the list stays: see httpd.Server.wait_closed)
        unload(before)
        gc.collect()


def close_port(ls):
    """The job's outcome is about to be published: answer the requests waiting on the
    listening socket `ls` (they see the update still running), then close it. From then on
    a browser's request is refused until the web server is back (a page's script retries),
    and that server answers it with the outcome: never a 503 or 409 for an update that has
    ended."""
    answer(ls)
    ls.close()


def server_config():
    """The update server's Config: serve()'s update_server (a URL 'http://host:8000/path',
    or a Config), else the "server" of the board's settings file /acupdate.json (Config's
    arguments)."""
    if core.server is not None and not isinstance(core.server, str):
        return core.server
    from .. import Phase
    from ..config import Config  # noqa: F401 (loaded before the Phase: its Config outlives it)

    with Phase():
        import acupdate.boardconfig

        return acupdate.boardconfig.server(core.server)


def tls_first(cfg):
    """The TLS context of Config `cfg`'s https server (None for http), made first, while the
    job's heap is in one piece: the 3 KiB it takes then finds its room, which the agent's
    code would split (Updater(cfg, buf, tls_first(cfg)))."""
    if not (cfg.tls and cfg.ca):
        return None
    from .. import Phase

    with Phase():
        import acupdate.http.tls

        return acupdate.http.tls.context(cfg.ca)


def answer(s):
    """Answer every connection waiting on the listening socket `s` (non-blocking), and the
    ones the server handed over (core.held) that have sent their request."""
    if core.held:
        import select

        p = select.poll()
        for c in core.held:
            p.register(c, select.POLLIN)
        for e in p.ipoll(0):
            p.unregister(e[0])
            core.held.remove(e[0])
            _serve(e[0])
    while True:
        try:
            c = s.accept()[0]
        except OSError:  # none waiting
            return
        _serve(c)


def _serve(c):
    try:
        c.settimeout(_TIMEOUT)
        _one(c)
    except Exception as e:  # a browser gone or garbage in: the update goes on
        print("acupdate web: request failed:", core.msg(e))
        if isinstance(e, MemoryError):  # the heap short: the answer that needs none
            try:
                c.write(core.BUSY)
            except OSError:
                pass
    c.close()


def _line(c, one):
    # The next line of the request head, at most _LINE bytes of it (the rest is read and
    # dropped), without its LF; read a byte at a time through `one` (a 1-byte buffer). No
    # buffer of _LINE bytes is allocated: while an update runs, the heap is in pieces, and a
    # 257-byte one (readline(256)'s) once found no room at 64K, the request closed unanswered.
    line = bytearray()
    while c.readinto(one):
        if one[0] == 10:
            break
        if len(line) < _LINE:
            line.append(one[0])
    return bytes(line)


def _one(c):
    one = bytearray(1)
    line = _line(c, one).split()
    if len(line) != 3:
        raise ValueError("bad HTTP request line")
    cred = None
    length = 0
    for _ in range(_LINES):
        h = _line(c, one)
        if not h.strip():
            break
        k, _, v = h.partition(b":")
        k = k.strip().lower()
        if k == b"authorization":
            cred = core.basic(v)
        elif k == b"content-length":
            length = int(v)
    if core.auth is not None and cred != core.auth:
        a = (
            b"401 Unauthorized",
            (core.UNAUTHORIZED.encode(),),
            b"text/plain",
            b'WWW-Authenticate: Basic realm="acupdate"\r\n',
        )
    elif line[1].split(b"?")[0] == core.PROGRESS:
        a = core.progress()
    else:  # rare during an update: their module comes for the answer, and goes
        if line[0] == b"POST" and length <= 16777216:  # (source.DROP_MAX) so that the
            b = bytearray(_DROP)  # browser gets the answer (a blocking readinto fills all
            while length > 0:  # it is given)
                n = c.readinto(b, min(length, _DROP))
                if not n:
                    break
                length -= n
        from . import busy

        try:
            a = busy.conflicting() if line[0] == b"POST" else busy.unavailable()
        finally:
            core.drop("web.busy", clear=True)
    complete(core.send(Out(c), *a))
