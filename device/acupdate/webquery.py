# acupdate.webquery: the UPDATE menu's catalog page, a job of acupdate.webjob (the web
# server closed): the catalog query (acupdate.agent's Updater.catalog(): the agent's transport)
# leaves the heap before the page's module (acupdate.webmenu) comes; the page goes out on
# the browser's connection, which the server handed over (webcat.menu).
import gc

from . import loaded, unload, web
from .webjob import Out, close_port, complete, server_config, tls_first


def job(s, ls):
    url = "(none)"
    try:
        s.settimeout(10)
        before = loaded()
        try:
            cfg = server_config()
            url = cfg.url()
            tls = tls_first(cfg)
            from .agent import Updater

            entries = Updater(cfg, web.block, tls).catalog()
        except Exception as e:  # MemoryError too: the page says what happened
            entries = web.msg(e)
        cfg = tls = None
        unload(before)  # the query's modules go before the page's come
        gc.collect()
        from . import webmenu

        close_port(ls)  # the next request (the install) waits for the web server
        complete(webmenu.catalog(Out(s), url, entries))
    finally:
        s.close()
