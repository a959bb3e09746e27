"""A fault-injecting update server for the campaign tests: per image request it cuts,
stalls, drips, corrupts or lies, as the failing servers and networks of real fleets do.

Each case path (/case<N>.bin) gets one fault on its first request; later requests for
the same path (a resume with Range) are served correctly, with 206 for a Range.
"""

from __future__ import annotations

import hashlib
import random
import socket
import threading
from dataclasses import dataclass

from tools.image import build_app, build_merged

FAULTS = (
    "cut",  # connection closed at a random byte
    "stall",  # a random part sent, then nothing until the client gives up
    "drip",  # a few bytes, one at a time with pauses, then closed
    "bitflip",  # one bit of the body flipped
    "more",  # more bytes than Content-Length announces
    "fewer",  # fewer bytes than announced, then closed
    "bad-md5",  # malformed x-MD5
    "no-md5",  # no x-MD5 at all
    "wrong-md5",  # well-formed x-MD5 of other bytes
    "magic",  # not an ESP image
    "merged",  # bootloader + partition table + app
    "chip",  # an ESP32-S3 image
    "empty",  # Content-Length: 0
    "garbage-status",  # a status line that is not HTTP
    "garbage-header",  # a header line without a colon
    "long-header",  # a 4 KiB header line
)


@dataclass
class Case:
    index: int
    fault: str
    at: int  # byte offset the fault acts at (cut, stall, drip, bit flip)


class FaultServer:
    def __init__(self, image: bytes, rng: random.Random, n: int, stall_s: float = 2.0):
        self.image = image
        self.md5 = hashlib.md5(image).hexdigest()
        self.stall_s = stall_s
        self.cases = [Case(i, rng.choice(FAULTS), rng.randrange(1, len(image))) for i in range(n)]
        self.seen: dict[str, int] = {}
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.merged = build_merged(image)
        self.other_chip = build_app(version="9.9.9", size=len(image), chip="esp32s3")

    def __enter__(self) -> FaultServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    got = conn.recv(4096)
                    if not got:
                        return
                    data += got
            except OSError:
                return
            lines = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
            path = lines[0].split(" ")[1]
            rng = None
            for h in lines[1:]:
                k, _, v = h.partition(":")
                if k.strip().lower() == "range":
                    rng = v.strip()
            with self._lock:
                self.requests.append((path, rng))
                n = self.seen.get(path, 0)
                self.seen[path] = n + 1
            try:
                if path.startswith("/case") and n == 0:
                    case = self.cases[int(path[5:].split(".")[0])]
                    self._fault(conn, case)
                else:
                    self._good(conn, rng)
            except OSError:
                pass

    def _head(self, length: int, md5: str | None = None, extra: str = "") -> bytes:
        h = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
        h += f"Content-Length: {length}\r\n"
        if md5 is not None:
            h += f"x-MD5: {md5}\r\n"
        return (h + extra + "Connection: close\r\n\r\n").encode()

    def _good(self, conn: socket.socket, rng: str | None) -> None:
        img = self.image
        if rng and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[6:-1])
            head = (
                f"HTTP/1.1 206 Partial Content\r\nContent-Length: {len(img) - start}\r\n"
                f"Content-Range: bytes {start}-{len(img) - 1}/{len(img)}\r\n"
                f"x-MD5: {self.md5}\r\nConnection: close\r\n\r\n"
            ).encode()
            conn.sendall(head + img[start:])
            return
        conn.sendall(self._head(len(img), self.md5) + img)

    def _fault(self, conn: socket.socket, case: Case) -> None:
        img, md5, at, f = self.image, self.md5, case.at, case.fault
        if f == "cut":
            conn.sendall(self._head(len(img), md5) + img[:at])
        elif f in ("stall", "drip"):
            conn.sendall(self._head(len(img), md5) + img[:at])
            if f == "drip":
                for b in img[at : at + 3]:
                    self._stop.wait(0.2)
                    conn.sendall(bytes((b,)))
            else:
                self._stop.wait(self.stall_s)
        elif f == "bitflip":
            bad = bytearray(img)
            bad[at] ^= 1 << (at % 8)
            conn.sendall(self._head(len(img), md5) + bytes(bad))
        elif f == "more":
            conn.sendall(self._head(len(img), md5) + img + b"\x00" * 1000)
        elif f == "fewer":
            conn.sendall(self._head(len(img), md5) + img[: len(img) - 1 - at % 4096])
        elif f == "bad-md5":
            conn.sendall(self._head(len(img), md5[:20] + "zz") + img)
        elif f == "no-md5":
            conn.sendall(self._head(len(img)) + img)
        elif f == "wrong-md5":
            conn.sendall(self._head(len(img), hashlib.md5(b"other").hexdigest()) + img)
        elif f == "magic":
            bad = b"\x7fELF" + img[4:]
            conn.sendall(self._head(len(bad), hashlib.md5(bad).hexdigest()) + bad)
        elif f == "merged":
            m = self.merged
            conn.sendall(self._head(len(m), hashlib.md5(m).hexdigest()) + m)
        elif f == "chip":
            c = self.other_chip
            conn.sendall(self._head(len(c), hashlib.md5(c).hexdigest()) + c)
        elif f == "empty":
            conn.sendall(self._head(0, hashlib.md5(b"").hexdigest()))
        elif f == "garbage-status":
            conn.sendall(b"SPDY/9 what?\r\n\r\n" + img[:100])
        elif f == "garbage-header":
            conn.sendall(self._head(len(img), md5, "this is not a header\r\n") + img)
        elif f == "long-header":
            conn.sendall(self._head(len(img), md5, "X-Pad: " + "a" * 4096 + "\r\n") + img)
        else:
            raise AssertionError(f)
