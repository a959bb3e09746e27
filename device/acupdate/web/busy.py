# acupdate.web.busy: the answers to the requests that come while an update runs (besides its
# progress, acupdate.web's): 409 for a second update, 503 for a page. Loaded for one answer
# by acupdate.web.jobs (the server stepped aside) and acupdate.web.httpd (the board restarting
# into a new image), then dropped.
from . import core
from .source import drain

# The page of the answers given while an update runs: no page module, the heap is the
# update's. Its <div id=res> is what the upload page's script shows.
_BARE = (
    b'<!DOCTYPE html><meta charset="utf-8"><title>Update running</title><style>body{'
    b"font-family:sans-serif;max-width:36em;margin:2em auto;color:#222}</style><h3>Update "
    b'running</h3><div id="res"><p>'
)


def conflicting():
    """409: a second update while one runs (or while the board restarts into the last)."""
    if core.st.status == "SUCCESS":
        why = "An update was installed: the board is restarting. Wait for it to come back."
    else:
        why = "Another update is running (%s of %s: %d of %d bytes). Try again when it ends." % (
            core.st.kind,
            core.st.name or "an image",
            core.st.amount,
            core.st.size,
        )
    return b"409 Conflict", (_BARE, why.encode(), b"</p>")


async def conflict(src, w):
    """409 for a second update while the web server runs (the board restarting into the
    last one; during an update the server is closed and acupdate.web.jobs answers)."""
    if not src.expect_continue:
        await drain(src)
    await core.send(w, *conflicting())


def unavailable():
    """503 for a page while an update runs."""
    return (
        b"503 Service Unavailable",
        (
            b'<meta http-equiv="refresh" content="5">',
            _BARE,
            b"An update is running: this page comes back when it has ended (its progress: "
            b'<a href="/_ac/update_progress">/_ac/update_progress</a>).</p>',
        ),
        core.HTML,
        b"Retry-After: 5\r\n",
    )
