"""acupdate's update server: AutoConnect's ``updateserver.py`` protocol, for a fleet.

Serves a catalog folder to ESP32/ESP8266 HTTPUpdate clients: the catalog
query ``/_catalog?op=list&path=...`` and the images, streamed, with their MD5.
Adds threads, an MD5 cache, HEAD, Range, 304, HTTPS, basic auth and an
access log. Run it with ``python -m tools.server --help``.
"""

from .core import RequestRecord, ServerError, UpdateServer

__all__ = ["RequestRecord", "ServerError", "UpdateServer"]
