# acupdate.download.query: the catalog query of Updater.scan(): its request (a Phase),
# then the streamed parser over the reply (a Phase). Loaded for the query only (a Phase in
# acupdate.agent): a download does not keep its code in the heap.
from micropython import const

from .. import Phase
from ..http.response import Deadline

_ENTRY = const(1024)  # the catalog's largest entry: the first 1 KiB of the block buffer


def scan(up, each):
    """Updater `up`'s scan(each): each(entry) for every bin entry as it is read; the number
    of bin entries read. OSError or ValueError when the query fails or the catalog is bad,
    within Config's catalog_deadline."""
    cfg = up.cfg
    deadline = Deadline(cfg.catalog_deadline, "the catalog query's deadline")
    with Phase():
        import acupdate.download.request

        r = acupdate.download.request.get(cfg, cfg.catalog_target(), b"", up.buf, deadline, None)
    try:
        if r.status != 200:
            raise OSError(
                "Update server responds (%d) to the catalog query for %s" % (r.status, cfg.url())
            )
        with Phase():
            import acupdate.download.catalog

            return acupdate.download.catalog.scan(r.readinto, each, memoryview(up.buf)[:_ENTRY])
    finally:
        r.close()
