# acupdate.webfetch: the UPDATE menu's install from the update server (webcat.act starts
# it), a task of the web server's asyncio loop. The agent's own steps do the work, so that
# both ways of updating have the same transport (https checked against the CA file, basic
# auth, redirects, the deadline, resume after a drop) and the same checks and texts: the
# request headers (acupdate.reqhdrs), the reply and the first block (acupdate.first,
# acupdate.imagecheck), the blocks (acupdate.ota.Writer) and a dropped connection
# (acupdate.resume), each loaded for its step. Only the loop over the blocks is this
# module's (acupdate.transfer's, made async): the web server answers the progress polls
# between two blocks.
import asyncio
import time

from . import http, web  # noqa: F401 (http: the reply's class, kept loaded, see agent)
from .config import cold


class Job:
    """What the agent's steps use of an agent.Updater: the Config and the block buffer
    (the web server's)."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.buf = web.block


async def run(cfg, name, size, sha):
    """The install task: web.st tells its progress and outcome; web.leave() when it ends."""
    st = web.st
    try:
        await install(cfg, name, size, sha, st)
    except Exception as e:  # MemoryError too: the page must say what happened
        web.fail(web.msg(e))
    finally:
        st.busy = False
        web.leave()
    print("acupdate web: install %s: %s" % (st.status, st.text))


async def install(cfg, name, size, sha, st):
    """Install catalog entry `name` from the server in `cfg`; progress and result in `st`.
    `size`, `sha`: the catalog's (see act())."""
    up = Job(cfg)
    deadline = time.ticks_add(time.ticks_ms(), int(cfg.deadline * 1000))
    part = cold("slots", "target")
    f = cold("reqhdrs", "facts", up)  # the running image's, kept for resumes
    a = cold(
        "first", "image", up, name, part, f[0], cold("reqhdrs", "raw", part, f), size, sha, deadline
    )
    if a is None:
        st.status = "NOAVAIL"
        st.text = "the board already runs %s: nothing to install" % name
        return
    r, b, target, ctx = a
    del a[:]
    md5, n, sha, k, err = b
    b = None
    if not err:  # the first block is in: check it before anything is written
        try:
            cold("imagecheck", "check", memoryview(up.buf)[:k], f[0], n, part.info()[3])
        except BaseException:
            r.close()
            raise
    st.size = n
    st.status = "PROGRESS"
    w = None
    tries = 0
    while True:  # transfer.run's loop
        if r:
            try:
                if not err:
                    if not w:
                        from . import ota

                        w = ota.Writer(part, n, up.buf, sha)
                    err = await _pump(st, r, w, k)
            finally:
                r.close()
        if err is None:
            break
        tries += 1
        r, w, md5, n, sha, k, err = cold(
            "resume", "again", up, w, err, tries, md5, n, sha, target, part, f, size, deadline, ctx
        )
        st.amount = w.done if w else 0
    md5 = w.finish(md5)
    part.readblocks(0, up.buf)  # the version for the result, from the image now in flash
    version = cold("imagecheck", "app_desc", up.buf)[0]
    st.status = "SUCCESS"
    st.amount = n
    st.text = "%s: %d bytes, MD5 %s, version %s, written to %s and set to boot." % (
        name,
        n,
        md5,
        version or "(blank)",
        part.info()[4],
    )


async def _pump(st, r, w, n):
    # transfer._pump's loop, a block a step: None when the whole image is in, else the
    # OSError that ended the connection.
    r.err = 0
    size = w.size
    while True:
        if n:
            w.commit(n)
            st.amount = w.done
        if w.done >= size:
            break
        await asyncio.sleep_ms(0)
        try:
            n = r.readinto(w.room())
        except OSError as e:
            return e
        if not n:
            return cold("resume", "early", r, w.done, size)
    if r.length < 0 and not r.err:
        cold("resume", "end", r, size)
    return None
