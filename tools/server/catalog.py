"""The catalog: one folder listed as AutoConnect's JSON array of entries.

A ``.bin`` file whose first byte is 0xE9 (the ESP image magic) is a ``bin``
entry with the file's mtime as ``date`` (``%x``) and ``time`` (``%X``) and its
``size`` (and, when the server is asked to, its ``md5`` and ``sha256``: the file's
digests in hex, from the server's digest cache, as the export's catalogs list them);
any other file is ``file``; a folder is
``directory``. Each entry is classified against the folder being listed. Symbolic
links that resolve outside the catalog, or nowhere, are left out: they could not be
served.
"""

from __future__ import annotations

import logging
import os
import stat
import time

from .md5cache import FileChanging, Md5Cache
from .paths import inside

log = logging.getLogger("acupdate.server")

IMAGE_MAGIC = b"\xe9"


def open_regular(path: str) -> int | None:
    """Open ``path`` for reading without ever blocking on a FIFO or device.

    Returns a file descriptor, or None when ``path`` is not a regular file.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            return fd
    except OSError:
        os.close(fd)
        raise
    os.close(fd)
    return None


def image_info(
    path: str, digests: Md5Cache | None = None
) -> tuple[os.stat_result, tuple[str, str]] | None:
    """(stat, (hex MD5, hex SHA-256)) of a regular file starting with 0xE9, else None.

    The digests come from ``digests`` (keyed on the real path, shared with the image
    replies), with the stat they belong to; they are "" without ``digests``, or when the
    file kept changing while it was read (the entry is then listed without them).
    """
    fd = open_regular(path)
    if fd is None:
        return None
    try:
        if os.pread(fd, 1, 0) != IMAGE_MAGIC:
            return None
        if digests is None:
            return os.fstat(fd), ("", "")
        real = os.path.realpath(path)
        try:
            found, st = digests.digests(real, fd)
        except FileChanging as err:
            log.warning("catalog: listing %s without its digests: %s", real, err)
            return os.fstat(fd), ("", "")
        return st, found
    finally:
        os.close(fd)


def bin_entry(
    name: str, st: os.stat_result, found: tuple[str, str] = ("", "")
) -> dict[str, object]:
    """A bin entry; ``found`` (hex MD5, hex SHA-256) adds ``md5`` and ``sha256``."""
    when = time.localtime(st.st_mtime)
    entry: dict[str, object] = {
        "name": name,
        "type": "bin",
        "date": time.strftime("%x", when),
        "time": time.strftime("%X", when),
        "size": st.st_size,
    }
    md5, sha256 = found
    if md5:
        entry["md5"] = md5
    if sha256:
        entry["sha256"] = sha256
    return entry


def list_folder(folder: str, root: str, digests: Md5Cache | None = None) -> list[dict[str, object]]:
    """The catalog entries of ``folder`` (a real path inside real path ``root``); with
    ``digests``, each bin entry has its ``md5`` and ``sha256`` too."""
    with os.scandir(folder) as scan:
        found = sorted(scan, key=lambda entry: entry.name)
    entries: list[dict[str, object]] = []
    for entry in found:
        name = entry.name
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            log.warning("catalog: skipping %r in %s: the name is not valid UTF-8", name, folder)
            continue
        try:
            if entry.is_symlink():
                real = os.path.realpath(entry.path)
                if not inside(root, real) or not os.path.exists(real):
                    log.info("catalog: skipping link %s -> %s (outside or missing)", name, real)
                    continue
            if entry.is_dir():
                entries.append({"name": name, "type": "directory"})
                continue
            found_image = (
                image_info(entry.path, digests)
                if name.endswith(".bin") and entry.is_file()
                else None
            )
        except OSError as err:
            log.info("catalog: skipping %s: %s", entry.path, err)
            continue
        if found_image is None:
            entries.append({"name": name, "type": "file"})
        else:
            entries.append(bin_entry(name, *found_image))
    return entries
