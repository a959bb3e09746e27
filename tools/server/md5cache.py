"""MD5 (and SHA-256) of each served file, computed once and reused until the file changes.

An entry is keyed on the file's real path and checked against its signature
(size, mtime_ns, ctime_ns, inode, device). Requests that arrive while a digest
is being computed wait for that computation instead of starting their own.

Timestamps have a coarse granularity (a kernel tick on Linux, 2 s on FAT): a
file rewritten in place within the same tick keeps its signature. Like git's
"racily clean" rule, a digest is therefore only remembered once the file's
mtime is older than ``racy_ns`` when hashing starts; until then every request
hashes the file again (concurrent requests still share one computation).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import OrderedDict

HASH_CHUNK = 128 * 1024
RACY_NS = 3_000_000_000
ATTEMPTS = 3

Signature = tuple[int, int, int, int, int]


class FileChanging(OSError):
    """The file kept changing while it was being hashed."""


def signature(st: os.stat_result) -> Signature:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


Digests = tuple[str, str]  # (hex MD5, hex SHA-256)


class _Job:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.digest: Digests = ("", "")
        self.error: BaseException | None = None

    def result(self) -> Digests:
        self.done.wait()
        if self.error is not None:
            raise self.error
        return self.digest


def hash_fd(fd: int, size: int) -> Digests:
    """(MD5, SHA-256) of the ``size`` bytes of the open file ``fd``, read once with one
    buffer."""
    digest = hashlib.md5()
    sha = hashlib.sha256()
    buf = bytearray(HASH_CHUNK)
    view = memoryview(buf)
    offset = 0
    while True:
        n = os.preadv(fd, [view], offset)
        if n == 0:
            break
        digest.update(view[:n])
        sha.update(view[:n])
        offset += n
    if offset != size:
        raise FileChanging(f"read {offset} bytes, the file said {size}")
    return digest.hexdigest(), sha.hexdigest()


class Md5Cache:
    def __init__(self, max_entries: int = 4096, racy_ns: int = RACY_NS) -> None:
        self.max_entries = max_entries
        self.racy_ns = racy_ns
        self.computations = 0
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[Signature, Digests]] = OrderedDict()
        self._jobs: dict[tuple[str, Signature], _Job] = {}

    def digest(self, path: str, fd: int) -> tuple[str, os.stat_result]:
        """(hex MD5, stat) of the open regular file ``fd`` whose real path is ``path``.

        The stat is the one the digest belongs to: send exactly st_size bytes.
        Raises FileChanging when the file does not hold still for ATTEMPTS reads.
        """
        digests, st = self.digests(path, fd)
        return digests[0], st

    def digests(self, path: str, fd: int) -> tuple[Digests, os.stat_result]:
        """((hex MD5, hex SHA-256), stat): as digest(), with the SHA-256 too."""
        for _ in range(ATTEMPTS):
            st = os.fstat(fd)
            try:
                return self._digest(path, fd, st), st
            except FileChanging:
                continue
        raise FileChanging(f"{path} changed while it was being read, {ATTEMPTS} times")

    def _digest(self, path: str, fd: int, st: os.stat_result) -> Digests:
        sig = signature(st)
        with self._lock:
            hit = self._entries.get(path)
            if hit is not None and hit[0] == sig:
                self._entries.move_to_end(path)
                return hit[1]
            job = self._jobs.get((path, sig))
            owner = job is None
            if job is None:
                job = self._jobs[(path, sig)] = _Job()
        if not owner:
            return job.result()
        try:
            started = time.time_ns()
            with self._lock:
                self.computations += 1
            job.digest = hash_fd(fd, st.st_size)
            if signature(os.fstat(fd)) != sig:
                raise FileChanging(f"{path} changed while it was being read")
            with self._lock:
                if started - st.st_mtime_ns > self.racy_ns:
                    self._entries[path] = (sig, job.digest)
                    self._entries.move_to_end(path)
                    while len(self._entries) > self.max_entries:
                        self._entries.popitem(last=False)
            return job.digest
        except BaseException as err:
            job.error = err
            raise
        finally:
            with self._lock:
                del self._jobs[(path, sig)]
            job.done.set()
