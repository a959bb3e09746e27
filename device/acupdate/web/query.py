# acupdate.web.query: the UPDATE menu's catalog page, a job of acupdate.web.jobs (the web
# server closed): the catalog query (acupdate.agent's Updater.catalog(): the agent's transport)
# leaves the heap before the page's module (acupdate.web.menupages) comes; the page goes out on
# the browser's connection, which the server handed over (menu.menu).
import gc

from .. import loaded, unload
from . import core
from .jobs import Out, close_port, complete, server_config, tls_first


def job(s, ls):
    url = "(none)"
    try:
        s.settimeout(10)
        before = loaded()
        try:
            cfg = server_config()
            url = cfg.url()
            tls = tls_first(cfg)
            from ..agent import Updater

            entries = Updater(cfg, core.block, tls).catalog()
        except Exception as e:  # MemoryError too: the page says what happened
            entries = core.msg(e)
        cfg = tls = None
        unload(before)  # the query's modules go before the page's come
        gc.collect()
        from . import menupages

        close_port(ls)  # the next request (the install) waits for the web server
        complete(menupages.catalog(Out(s), url, entries))
    finally:
        s.close()
