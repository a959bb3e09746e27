"""A fault-injecting update server for the campaign tests: per image request it cuts,
stalls, drips, corrupts, lies or redirects, as the failing servers and networks of real
fleets do.

Each case path (/case<N>.bin) gets its fault on its first request; later requests for the
same path are served correctly (206 for `Range: bytes=N-`), except for the faults that are
about the resume itself (range-ignored, range-bad, range-416, cut-always) or that keep
redirecting (redirect-loop). A redirect's target (/moved/case<N>.bin) is served correctly.
Every good reply carries x-MD5 and, on odd cases, x-SHA256.
"""

from __future__ import annotations

import hashlib
import random
import socket
from dataclasses import dataclass

from mpy_helpers import LoopbackServer

from tools.image import build_app, build_merged

# The request headers of an ESP32 running the Arduino HTTPUpdate client (protocol.md
# section 2), for requests the tests send to the update server themselves.
MAC = "24:0A:C4:00:00:01"
DEVICE = {
    "User-Agent": "ESP32-http-Update",
    "Cache-Control": "no-cache",
    "x-ESP32-STA-MAC": MAC,
    "x-ESP32-AP-MAC": "24:0A:C4:00:00:02",
    "x-ESP32-free-space": "1966080",
    "x-ESP32-sketch-size": "1048576",
    "x-ESP32-sketch-md5": "0123456789abcdef0123456789abcdef",
    "x-ESP32-chip-size": "4194304",
    "x-ESP32-sdk-version": "v5.2.2",
    "x-ESP32-mode": "sketch",
}

FAULTS = (
    "cut",  # connection closed at a random byte: resumed
    "stall",  # a random part sent, then nothing until the client gives up: resumed
    "drip",  # a few bytes, one at a time with pauses, then closed: resumed
    "fewer",  # fewer bytes than announced, then closed: resumed
    "cut-always",  # every request cut at a random byte: the retries run out
    "range-ignored",  # cut, then a 200 (the whole image) to the Range request: starts over
    "range-bad",  # cut, then a 206 whose Content-Range names other bytes
    "range-416",  # cut, then 416 to the Range request
    "redirect",  # 301/302/303/307/308 to /moved/<name>, relative or absolute
    "redirect-loop",  # redirects to itself, forever
    "chunked",  # chunked transfer coding, no Content-Length: the catalog's size decides
    "bitflip",  # one bit of the body flipped
    "more",  # more bytes than Content-Length announces
    "bad-md5",  # malformed x-MD5
    "no-md5",  # no x-MD5 at all
    "wrong-md5",  # well-formed x-MD5 of other bytes
    "bad-sha",  # well-formed x-SHA256 of other bytes
    "magic",  # not an ESP image
    "merged",  # bootloader + partition table + app
    "chip",  # an ESP32-S3 image
    "empty",  # Content-Length: 0
    "garbage-status",  # a status line that is not HTTP
    "garbage-header",  # a header line without a colon
    "long-header",  # a 4 KiB header line
)
# Faults after which the update must succeed, with exactly the served image.
SURVIVABLE = ("cut", "stall", "drip", "fewer", "range-ignored", "redirect", "chunked", "more")
REDIRECTS = (301, 302, 303, 307, 308)
BLOCK = 4096


@dataclass
class Case:
    index: int
    fault: str
    at: int  # byte offset the fault acts at (cut, stall, drip, bit flip)
    variant: int  # a second random choice (redirect code and form)

    def sent(self, size: int) -> int:
        """Body bytes the faulty first reply delivers before the connection drops."""
        if self.fault == "drip":
            return min(self.at + 3, size)
        if self.fault == "fewer":
            return size - 1 - self.at % BLOCK
        return self.at

    def resume_from(self, size: int) -> int | None:
        """The Range start the agent must ask for next: the first byte not yet written,
        the start of the block the drop came in (None: it starts over with a plain
        request, the drop came before the first block was complete and checked; -1: no
        next request, the first reply brought the whole image)."""
        n = self.sent(size)
        return -1 if n >= size else n - n % BLOCK if n >= BLOCK else None


class FaultServer(LoopbackServer):
    def __init__(self, image: bytes, rng: random.Random, n: int, stall_s: float = 2.0):
        super().__init__()
        self.image = image
        self.md5 = hashlib.md5(image).hexdigest()
        self.sha256 = hashlib.sha256(image).hexdigest()
        self.stall_s = stall_s
        self.cases = [
            Case(i, rng.choice(FAULTS), rng.randrange(1, len(image)), rng.randrange(1000))
            for i in range(n)
        ]
        for c in self.cases:  # a resume's own faults need a resume: a drop after block 0
            if c.fault.startswith("range-"):
                c.at = BLOCK + c.at % (len(image) - BLOCK)
        self.seen: dict[str, int] = {}
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.cut_rng = random.Random(rng.random())
        self.url = f"http://127.0.0.1:{self.port}/"
        self.merged = build_merged(image)
        self.other_chip = build_app(version="9.9.9", size=len(image), chip="esp32s3")

    def requests_for(self, index: int) -> list[tuple[str, str | None]]:
        """The requests of case `index`, its redirect targets included."""
        name = f"case{index}.bin"
        with self._lock:
            return [(p, r) for p, r in self.requests if p.rsplit("/", 1)[-1] == name]

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
                if path.startswith("/case"):
                    case = self.cases[int(path[5:].split(".")[0])]
                    self._fault(conn, case, n, rng)
                else:
                    self._good(conn, rng, 0)
            except OSError:
                pass

    def _head(self, length: int, md5: str | None = None, extra: str = "") -> bytes:
        h = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
        h += f"Content-Length: {length}\r\n"
        if md5 is not None:
            h += f"x-MD5: {md5}\r\n"
        return (h + extra + "Connection: close\r\n\r\n").encode()

    def _good(self, conn: socket.socket, rng: str | None, index: int) -> None:
        img = self.image
        sha = f"x-SHA256: {self.sha256}\r\n" if index % 2 else ""
        if rng and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[6:-1])
            head = (
                f"HTTP/1.1 206 Partial Content\r\nContent-Length: {len(img) - start}\r\n"
                f"Content-Range: bytes {start}-{len(img) - 1}/{len(img)}\r\n"
                f"x-MD5: {self.md5}\r\n{sha}Connection: close\r\n\r\n"
            ).encode()
            conn.sendall(head + img[start:])
            return
        conn.sendall(self._head(len(img), self.md5, sha) + img)

    def _redirect(self, conn: socket.socket, code: int, location: str) -> None:
        conn.sendall(
            f"HTTP/1.1 {code} Moved\r\nLocation: {location}\r\nContent-Length: 0\r\n"
            "Connection: close\r\n\r\n".encode()
        )

    def _fault(self, conn: socket.socket, case: Case, n: int, rng: str | None) -> None:
        img, md5, at, f = self.image, self.md5, case.at, case.fault
        if f == "cut-always":
            with self._lock:
                at = self.cut_rng.randrange(1, len(img))
            conn.sendall(self._head(len(img), md5) + img[:at])
            return
        if f == "redirect-loop":
            self._redirect(conn, 302, f"/case{case.index}.bin")
            return
        if n and f == "range-ignored":
            self._good(conn, None, case.index)  # a 200 with the whole image
            return
        if n and f == "range-bad":
            start = int((rng or "bytes=0-")[6:-1])
            conn.sendall(
                (
                    f"HTTP/1.1 206 Partial Content\r\nContent-Length: {len(img) - start}\r\n"
                    f"Content-Range: bytes 0-{len(img) - start - 1}/{len(img)}\r\n"
                    f"x-MD5: {md5}\r\nConnection: close\r\n\r\n"
                ).encode()
                + img[:-start]
            )
            return
        if n and f == "range-416":
            conn.sendall(
                f"HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len(img)}\r\n"
                "Content-Length: 0\r\nConnection: close\r\n\r\n".encode()
            )
            return
        if n:
            self._good(conn, rng, case.index)
            return
        if f in ("cut", "range-ignored", "range-bad", "range-416"):
            conn.sendall(self._head(len(img), md5) + img[:at])
        elif f in ("stall", "drip"):
            conn.sendall(self._head(len(img), md5) + img[:at])
            if f == "drip":
                for b in img[at : at + 3]:
                    self._stop.wait(0.2)
                    conn.sendall(bytes((b,)))
            else:
                self._stop.wait(self.stall_s)
        elif f == "fewer":
            conn.sendall(self._head(len(img), md5) + img[: case.sent(len(img))])
        elif f == "redirect":
            code = REDIRECTS[case.variant % len(REDIRECTS)]
            where = f"moved/case{case.index}.bin"  # relative to the request's folder
            if case.variant % 3 == 1:
                where = "/" + where
            elif case.variant % 3 == 2:
                where = f"http://127.0.0.1:{self.port}/{where}"
            self._redirect(conn, code, where)
        elif f == "chunked":
            parts, i, size = [], 0, 1 + case.variant * 7
            while i < len(img):
                piece = img[i : i + size]
                parts.append(b"%x\r\n%s\r\n" % (len(piece), piece))
                i += size
            head = (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                f"x-MD5: {md5}\r\nConnection: close\r\n\r\n"
            ).encode()
            conn.sendall(head + b"".join(parts) + b"0\r\n\r\n")
        elif f == "bitflip":
            bad = bytearray(img)
            bad[at] ^= 1 << (at % 8)
            conn.sendall(self._head(len(img), md5) + bytes(bad))
        elif f == "more":
            conn.sendall(self._head(len(img), md5) + img + b"\x00" * 1000)
        elif f == "bad-md5":
            conn.sendall(self._head(len(img), md5[:20] + "zz") + img)
        elif f == "no-md5":
            conn.sendall(self._head(len(img)) + img)
        elif f == "wrong-md5":
            conn.sendall(self._head(len(img), hashlib.md5(b"other").hexdigest()) + img)
        elif f == "bad-sha":
            other = hashlib.sha256(b"other").hexdigest()
            conn.sendall(self._head(len(img), md5, f"x-SHA256: {other}\r\n") + img)
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


@dataclass
class Seen:
    """One request as a ScriptServer got it: path, headers (lower-case names), time."""

    path: str
    headers: dict[str, str]
    at: float

    @property
    def range(self) -> str | None:
        return self.headers.get("range")


class ScriptServer(LoopbackServer):
    """Serves scripted replies on 127.0.0.1: `script` maps a request path to a list of
    replies, one per request to that path in order (the last one repeats). A reply is
    bytes (sent as they are, then the connection is closed) or a callable(conn, Seen).
    Unknown paths get 404. `.url`, `.port`, `.seen` (list of Seen)."""

    def __init__(self, script: dict[str, list], tls=None):
        super().__init__()
        import time

        self._time = time.monotonic
        self.tls = tls  # an ssl.SSLContext: serve https
        self.script = script
        self.seen: list[Seen] = []
        self._count: dict[str, int] = {}
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}/"

    def requests(self, path: str) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.path == path]

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            data = b""
            try:
                if self.tls is not None:
                    conn = self.tls.wrap_socket(conn, server_side=True)
                while b"\r\n\r\n" not in data:
                    got = conn.recv(4096)
                    if not got:
                        return
                    data += got
            except OSError:
                return
            lines = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
            path = lines[0].split(" ")[1]
            headers = {}
            for h in lines[1:]:
                k, _, v = h.partition(":")
                headers[k.strip().lower()] = v.strip()
            seen = Seen(path, headers, self._time())
            with self._lock:
                self.seen.append(seen)
                n = self._count.get(path, 0)
                self._count[path] = n + 1
            replies = self.script.get(path)
            try:
                if not replies:
                    conn.sendall(reply(404, b"not found"))
                    return
                r = replies[min(n, len(replies) - 1)]
                if callable(r):
                    r(conn, seen, self._stop)
                else:
                    conn.sendall(r)
            except OSError:
                pass


def reply(status: int, body: bytes = b"", headers: dict | None = None, length=True) -> bytes:
    """An HTTP/1.1 reply: status, headers, Content-Length (unless length is False)."""
    h = [f"HTTP/1.1 {status} X"]
    h += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if length:
        h.append(f"Content-Length: {len(body)}")
    h.append("Connection: close")
    return ("\r\n".join(h) + "\r\n\r\n").encode() + body


def image_reply(image: bytes, **extra) -> bytes:
    """200 with the image, its x-MD5 (and `extra` headers)."""
    return reply(200, image, {"x-MD5": hashlib.md5(image).hexdigest(), **extra})


def partial_reply(image: bytes, start: int, **extra) -> bytes:
    """206 with the image from `start`, its Content-Range and the whole image's x-MD5."""
    n = len(image)
    h = {"Content-Range": f"bytes {start}-{n - 1}/{n}", "x-MD5": hashlib.md5(image).hexdigest()}
    return reply(206, image[start:], {**h, **extra})


def chunked_reply(image: bytes, sizes: tuple[int, ...] = (1000,), status: int = 200, **extra):
    """The image in chunked transfer coding, chunk sizes cycling through `sizes`."""
    parts, i, k = [], 0, 0
    while i < len(image):
        piece = image[i : i + sizes[k % len(sizes)]]
        parts.append(b"%x\r\n%s\r\n" % (len(piece), piece))
        i += len(piece)
        k += 1
    h = {"Transfer-Encoding": "chunked", "x-MD5": hashlib.md5(image).hexdigest(), **extra}
    return reply(status, b"".join(parts) + b"0\r\n\r\n", h, length=False)


def cut(data: bytes, at: int):
    """Send the first `at` bytes of a reply, then close the connection."""
    return data[:at]


def reset_after(data: bytes):
    """Send `data`, then reset the connection (RST: SO_LINGER 0)."""

    def send(conn, seen, stop):
        import struct

        conn.sendall(data)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    return send


def stall_after(data: bytes, seconds: float = 5.0):
    """Send `data`, then nothing until the client gives up (or `seconds`)."""

    def send(conn, seen, stop):
        conn.sendall(data)
        stop.wait(seconds)

    return send


def drip(data: bytes, head: int, every: float = 1.0):
    """Send the first `head` bytes, then one byte per `every` seconds."""

    def send(conn, seen, stop):
        conn.sendall(data[:head])
        for i in range(head, len(data)):
            if stop.wait(every):
                return
            conn.sendall(data[i : i + 1])

    return send


# Device side of the transport tests: run updates with one Updater and report each as
# JSON: status, error, the largest progress amount, the MD5 of the first `size` bytes of
# the slot it wrote, whether that slot starts with an image header, the boot slot before
# and after.
UPDATES = """
import json, esp32, hashlib, binascii
from acupdate.agent import Updater, NAMES
from acupdate.config import Config
up = Updater(Config({cfg}))
top = [0]
def prog(amount, size):
    top[0] = max(top[0], amount)
up.on_progress = prog
def boot():
    return esp32.Partition(0).info()[4]
def written(n):
    p = esp32.Partition(esp32.Partition.RUNNING).get_next_update()
    h = hashlib.md5()
    buf = up.buf  # no second 4 KiB: the tests also run at a 40K heap
    blk = 0
    head = None
    while n > 0:
        p.readblocks(blk, buf)
        if head is None:
            head = buf[0]
        h.update(buf if n >= 4096 else memoryview(buf)[:n])
        n -= 4096
        blk += 1
    return binascii.hexlify(h.digest()).decode(), head
for args in {updates}:
    before = boot()
    top[0] = 0
    # The target slot's first block erased: each update downloads (a slot that holds the
    # image complete is only set to boot, acupdate.ota.held; test_repl_held tests that).
    esp32.Partition(esp32.Partition.RUNNING).get_next_update().ioctl(6, 0)
    st = up.update(*args[:1], **args[1])
    md5, head = written(args[2])
    print(json.dumps({{"status": NAMES[st], "error": up.error, "top": top[0], "md5": md5,
        "header": head == 0xE9, "before": before, "after": boot()}}))
"""


# The agent's promised heaps (README): every case ends cleanly in them.
HTTP_HEAP = "48K"
HTTPS_HEAP = "64K"  # the unix port keeps TLS buffers on the MicroPython heap


def run_updates(board, cfg: str, updates: list, heap: str | None = None, timeout: float = 120):
    """Run UPDATES on `board` at the promised heap (https's when `cfg` names a CA file):
    `cfg` is Config's arguments as source text, `updates` a list of (name, update() keyword
    arguments, bytes to hash). Returns the JSON results."""
    import json

    code = UPDATES.format(cfg=cfg, updates=repr(updates))
    heap = heap or (HTTPS_HEAP if "ca=" in cfg else HTTP_HEAP)
    res = board.run(code, heap=heap, timeout=timeout)
    out = [json.loads(ln) for ln in res.output.splitlines() if ln.startswith("{")]
    if res.returncode != 0 or len(out) != len(updates):
        raise AssertionError(f"device run failed ({res.returncode}):\n{res.output}{res.stderr}")
    return out


def make_certs(folder) -> dict:
    """A test PKI in `folder` (made with cryptography): a CA, a server certificate it signed
    for 127.0.0.1 and localhost, one for localhost only, and another CA. Returns the paths:
    ca.der, ca.pem, other.der, bundle.pem (other CA then the CA), server.pem/.key,
    localhost.pem/.key."""
    import datetime
    import ipaddress
    from pathlib import Path

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder = Path(folder)
    now = datetime.datetime.now(datetime.UTC)
    pem, der = serialization.Encoding.PEM, serialization.Encoding.DER

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def cert(cn, key, issuer, issuer_key, ca=False, sans=()):
        b = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
        return b.sign(issuer_key, hashes.SHA256())

    out = {}
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = cert("acupdate test CA", ca_key, name("acupdate test CA"), ca_key, ca=True)
    other_key = ec.generate_private_key(ec.SECP256R1())
    other = cert("another CA", other_key, name("another CA"), other_key, ca=True)
    for label, sans in (
        ("server", (x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")))),
        ("localhost", (x509.DNSName("localhost"),)),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        c = cert("localhost", key, ca.subject, ca_key, sans=sans)
        (folder / f"{label}.pem").write_bytes(c.public_bytes(pem))
        (folder / f"{label}.key").write_bytes(
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        out[f"{label}.pem"] = folder / f"{label}.pem"
        out[f"{label}.key"] = folder / f"{label}.key"
    files = {
        "ca.der": ca.public_bytes(der),
        "ca.pem": ca.public_bytes(pem),
        "other.der": other.public_bytes(der),
        "bundle.pem": b"# other CA\n" + other.public_bytes(pem) + b"\n" + ca.public_bytes(pem),
    }
    for k, v in files.items():
        (folder / k).write_bytes(v)
        out[k] = folder / k
    return out
