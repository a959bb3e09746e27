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
# This module is serve()'s loop; acupdate.web.core, loaded with it, the state every request
# shares. The pages are served by acupdate.web.httpd (asyncio); their modules are imported
# per request and dropped after. Every update (an upload, the UPDATE menu's catalog query
# and install) runs with that server closed, asyncio out of the heap (acupdate.web.jobs),
# then the server starts again. The 4096-byte block buffer is made once, at the start.
import gc
import sys

from . import core


def serve(port=80, user=None, password=None, host="0.0.0.0", update_server=None, idle=20):
    """Serve the update pages until the board restarts (runs asyncio; does not return).

    user, password: HTTP basic auth for every page. update_server: for the UPDATE menu, a
    URL ('http://host:8000/path'), a Config, or None for /acupdate.json's "server".
    idle: seconds a browser may stay silent, or take to send its request's head, before its
    connection is dropped.

    Every update (an upload; the UPDATE menu's catalog page and install) runs with the
    server closed: asyncio and the request modules leave the heap, synchronous code does it
    (acupdate.web.jobs) and answers the other browsers meanwhile, then the server starts
    again."""
    args = (port, user, password, host, update_server, idle)
    keep = [k for k in sys.modules if k.startswith("acupdate.")]
    while True:
        import asyncio

        from . import httpd

        core.job = None
        asyncio.run(httpd.serve(*args))
        asyncio = httpd = None
        if core.job is None:
            return
        kind, arg = core.job, core.job_arg
        core.job = core.job_arg = None
        _calm(keep + ["acupdate.web.source"] if kind == "upload" else keep)  # its Source goes on
        from . import jobs

        jobs.run(kind, arg, port, host, _job)
        jobs = arg = None
        _calm(keep)


def _job(kind):
    # The function that does a job of `kind` (core.step_aside's), its module imported now.
    if kind == "upload":
        from .upload import job
    elif kind == "query":
        from .query import job
    else:
        from .install import job
    return job


def _calm(keep):
    # The server is closed: what it left (tasks, connections) goes with asyncio's loop;
    # asyncio's modules (frozen: they come back from flash), the connections' and the
    # request modules leave the heap, so that a job has it.
    core.srv = None
    if "asyncio" in sys.modules:
        sys.modules["asyncio"].new_event_loop()
        for k in [k for k in sys.modules if k == "asyncio" or k.startswith("asyncio.")]:
            del sys.modules[k]
    for k in [k for k in sys.modules if k.startswith("acupdate.") and k not in keep]:
        core.drop(k[9:], clear=True)
    gc.collect()
