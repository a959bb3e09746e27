# acupdate.web.core: what the web server's modules share, resident while it serves: the
# one update's state (st) and its progress answer, the server's settings (auth, the update
# server, idle_ms), the block buffer, the hand-over to a job (job, ls, held), the answer's
# head (send) and the words of an error (msg).
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
job = None  # the job for serve() to run with the server closed: its kind (step_aside's)
job_arg = None  # and its argument
ls = None  # the listening socket, from the server to the job
held = []  # type: list  # connections the server accepted that had sent nothing: the job's
idle_ms = 20000  # a browser silent this long is dropped


def busy():
    """An update runs, or one was installed and the board is about to restart."""
    return st.busy or st.status == "SUCCESS" or job is not None


def begin(kind, name):
    """An update begins: st says so from now on."""
    st.busy = True
    st.kind = kind
    st.status = "START"
    st.name = name
    st.amount = st.size = 0
    st.error = st.text = ""


def step_aside(kind, arg):
    """Close the server for a job: acupdate.web.serve() has acupdate.web.jobs.run() do it
    (`kind`: "upload", "query" or "install"; `arg`: the job's), then starts the server
    again."""
    global job, job_arg
    job = kind
    job_arg = arg
    srv.close()


def msg(e):
    """An exception's text for a person."""
    a = e.args[0] if e.args else type(e).__name__
    return "%s (OS error %d)" % (type(e).__name__, a) if isinstance(a, int) else str(a)


def fail(text):
    st.status = "FAIL"
    st.error = st.text = text


def basic(v):
    """An Authorization header's value (bytes) as auth has it: the scheme's case does not
    matter (RFC 7617: "basic", "BASIC" are "Basic")."""
    v = v.strip()
    return b"Basic " + v[6:].strip() if v[:6].lower() == b"basic " else v


# The answer when the board cannot serve a request now (too many connections waiting, or
# the heap short): no page module, no allocation.
BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 31\r\n"
    b"Retry-After: 1\r\nConnection: close\r\n\r\nThe board is busy: try again.\r\n"
)
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
    from .. import forget

    for n in names:
        forget("acupdate." + n, clear)


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
