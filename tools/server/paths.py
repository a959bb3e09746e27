"""Map request paths onto the catalog folder and refuse every way out of it.

Requests arrive as bytes (the request line is Latin-1 on the wire). A path is
percent-decoded exactly once; whatever still looks encoded afterwards is a
double-encoding trick and is refused, as are NUL bytes, backslashes, absolute
paths, any ``..`` segment, and symbolic links that resolve outside the folder.
"""

from __future__ import annotations

import os
import re
from urllib.parse import unquote_to_bytes

TRAVERSAL = "Path traversal detected"

_LEFTOVER_ESCAPE = re.compile(rb"%[0-9A-Fa-f]{2}")


class PathRefused(Exception):
    """The request names something outside the catalog folder (answered with 403).

    The message says why, for the server log; the client only sees TRAVERSAL.
    """


def decode(raw: bytes, plus_is_space: bool = False) -> bytes:
    """Percent-decode once (``+`` is a space in a query string)."""
    if plus_is_space:
        raw = raw.replace(b"+", b" ")
    return unquote_to_bytes(raw)


def parse_query(query: bytes) -> dict[bytes, bytes]:
    """``a=1&b=2`` -> {b"a": b"1", b"b": b"2"}; the first of repeated names wins."""
    params: dict[bytes, bytes] = {}
    for field in query.split(b"&"):
        if not field:
            continue
        name, _, value = field.partition(b"=")
        params.setdefault(decode(name, True), decode(value, True))
    return params


def inside(root: str, real: str) -> bool:
    """True when the resolved path ``real`` is ``root`` or below it."""
    try:
        return os.path.commonpath([root, real]) == root
    except ValueError:
        return False


def resolve(root: str, rel: bytes) -> str:
    """Return the real path of the decoded relative path ``rel`` below ``root``.

    ``root`` must itself be a real path (os.path.realpath). Raises PathRefused.
    """
    if b"\0" in rel:
        raise PathRefused(f"NUL byte in {rel!r}")
    if b"\\" in rel:
        raise PathRefused(f"backslash in {rel!r}")
    if _LEFTOVER_ESCAPE.search(rel):
        raise PathRefused(f"still percent-encoded after decoding: {rel!r}")
    if rel.startswith(b"/"):
        raise PathRefused(f"absolute path {rel!r}")
    if b".." in rel.split(b"/"):
        raise PathRefused(f"'..' segment in {rel!r}")
    real = os.path.realpath(os.path.join(root, os.fsdecode(rel)))
    if not inside(root, real):
        raise PathRefused(f"{rel!r} resolves to {real!r}, outside {root!r}")
    return real
