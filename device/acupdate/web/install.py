# acupdate.web.install: the UPDATE menu's install of a catalog entry, a job of acupdate.web.jobs
# (the web server closed): agent.Updater does it (the catalog looked up again: still
# there? its size and sha256; then its checks, https, auth, redirects, deadline, resume),
# and its progress callback answers the other browsers (jobs.answer).
from . import core
from .jobs import answer, close_port, server_config, tls_first


def job(name, ls):
    st = core.st
    end = [""]

    def progress(amount, size):
        st.status = "PROGRESS"
        st.amount = amount
        st.size = size
        answer(ls)

    def done(md5):
        end[0] = md5

    try:
        cfg = server_config()
        tls = tls_first(cfg)  # (before the agent's code comes)
        from ..agent import NOAVAIL, SUCCESS, Updater

        up = Updater(cfg, core.block, tls)
        cfg = tls = None
        up.on_progress = progress
        up.on_end = done
        answer(ls)
        found = []

        def match(entry):
            if entry.name == name:
                found.append(entry)
                return True
            return False

        # (scan(), not find(): find() loads acupdate.download.listing, whose code would
        # take 1 KiB of the room an https query's TLS context needs at 64 KiB)
        up.scan(match)
        if not found:
            raise OSError("%s is not in the catalog of %s (any more)" % (name, up.cfg.url()))
        e = found.pop()
        size, sha256, md5 = e.size, e.sha256, e.md5
        e = found = match = None
        answer(ls)
        r = up.update(name, size, sha256, md5)  # with the catalog's size, sha256 and md5
        if r == SUCCESS:
            status, text = "SUCCESS", _success(name, st.amount, end[0])
        elif r == NOAVAIL:
            status, text = "NOAVAIL", "the board already runs %s: nothing to install" % name
        else:
            status, text = "FAIL", up.error
    except Exception as e:  # MemoryError too: the result page must say what happened
        status, text = "FAIL", core.msg(e)
    close_port(ls)  # the outcome is the restarted server's to tell
    if status == "FAIL":
        core.fail(text)
    else:
        st.status, st.text = status, text
    st.busy = False
    print("acupdate web: install %s: %s" % (st.status, st.text))


def _success(name, size, md5):
    import esp32

    from .. import Phase

    p = esp32.Partition(esp32.Partition.BOOT)  # type: ignore[arg-type]
    buf = bytearray(256)
    p.readblocks(0, buf)
    with Phase():
        from ..ota import image

        version = image.AppDesc(buf).version
    return "%s: %d bytes, MD5 %s, version %s, written to %s and set to boot." % (
        name,
        size,
        md5,
        version or "(blank)",
        p.info()[4],
    )
