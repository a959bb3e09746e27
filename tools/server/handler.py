"""One HTTP connection: the catalog query and image downloads of AutoConnect's protocol.

``GET /_catalog?op=list&path=<path>`` lists a folder; any other path is an
image request, served only to the ESP32/ESP8266 HTTPUpdate client (its
User-Agent and x-<arch>-* headers). Images are streamed with sendfile, so the
memory a request needs does not grow with the file. Every request ends with
one access-log line.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import hmac
import http.server
import io
import json
import logging
import os
import re
import socket
import time
from http import HTTPStatus
from io import FileIO
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .catalog import list_folder, open_regular
from .md5cache import FileChanging
from .paths import TRAVERSAL, PathRefused, decode, parse_query, resolve

if TYPE_CHECKING:
    from .core import UpdateServer

log = logging.getLogger("acupdate.server")

IDENTITY_HEADERS = (
    "STA-MAC",
    "AP-MAC",
    "free-space",
    "sketch-size",
    "sketch-md5",
    "chip-size",
    "sdk-version",
)
ARCHS = ("ESP32", "ESP8266")
SEND_CHUNK = 256 * 1024
MAX_DRAINED_BODY = 64 * 1024

_RANGE = re.compile(r"([0-9]{0,18})-([0-9]{0,18})")
_DIGITS = re.compile(r"[0-9]{1,18}")
_ABSOLUTE_FORM = re.compile(rb"[A-Za-z][A-Za-z0-9+.-]*://")
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")


class BadRange(ValueError):
    """A Range header that is not ``bytes=a-b``, ``bytes=a-`` or ``bytes=-n``."""


class Unsatisfiable(ValueError):
    """A well-formed range that lies outside the file."""


def clean(text: str, limit: int = 200) -> str:
    """Printable ASCII only (log lines and reason phrases cannot be forged)."""
    text = _UNPRINTABLE.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_range(value: str, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single range; None to send the whole file.

    Several ranges are valid HTTP but not worth a multipart reply: the whole
    file is sent (RFC 9110 lets a server ignore Range).
    """
    unit, sep, spec = value.strip().partition("=")
    if not sep or unit.strip().lower() != "bytes":
        raise BadRange(f"Range {value!r}: only 'bytes=' ranges are understood")
    parts = [part.strip() for part in spec.split(",")]
    found = [_RANGE.fullmatch(part) for part in parts]
    for part, match in zip(parts, found, strict=True):
        if match is None or match.group(1) == match.group(2) == "":
            raise BadRange(f"Range {value!r}: {part!r} is not a-b, a- or -n")
        first, last = match.group(1), match.group(2)
        if first and last and int(last) < int(first):
            raise BadRange(f"Range {value!r}: {part!r} ends before it starts")
    if len(found) > 1:
        return None
    match = found[0]
    assert match is not None
    first, last = match.group(1), match.group(2)
    if not first:
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise Unsatisfiable(f"the last {suffix} bytes of a {size}-byte file")
        return max(0, size - suffix), size - 1
    start = int(first)
    if start >= size:
        raise Unsatisfiable(f"byte {start} of a {size}-byte file")
    end = min(int(last), size - 1) if last else size - 1
    return start, end


def content_disposition(name: str) -> str:
    if name.isascii() and name.isprintable():
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        return f'attachment; filename="{quoted}"'
    fallback = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name
    )
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


class HeadReader(io.RawIOBase):
    """The connection's reads: each bounded by ``timeout``, and all of them together by
    ``deadline`` (a time.monotonic() value) while it is set: a client that sends its
    request head one byte at a time cannot keep it open longer than that."""

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        self.sock = sock
        self.timeout = timeout
        self.deadline: float | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        wait = self.timeout
        if self.deadline is not None:
            wait = min(wait, self.deadline - time.monotonic())
            if wait <= 0:
                raise TimeoutError("the request head took too long (--head-timeout)")
        self.sock.settimeout(wait)
        try:
            return self.sock.recv_into(buffer)
        except TimeoutError:
            if self.deadline is not None and time.monotonic() >= self.deadline:
                raise TimeoutError("the request head took too long (--head-timeout)") from None
            raise


class UpdateRequestHandler(http.server.BaseHTTPRequestHandler):
    server_version = "acupdate-server"
    protocol_version = "HTTP/1.1"
    default_request_version = "HTTP/1.0"  # so that errors before the version have headers
    disable_nagle_algorithm = True

    app: UpdateServer
    # Per request (reset by handle_one_request), for the access log.
    _status: int | None
    _sent: int
    _note: str
    _mac: str
    _headers_sent: bool
    _started: float

    # --- plumbing -------------------------------------------------------------

    def setup(self) -> None:
        self.app = self.server.app  # type: ignore[attr-defined]
        self.request.settimeout(self.app.timeout)
        super().setup()
        self._head_reader = HeadReader(self.connection, self.app.timeout)
        self.rfile = io.BufferedReader(self._head_reader)

    def version_string(self) -> str:
        return self.server_version

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Called by send_response: keep the request now, log it once the reply is sent."""
        self._status = int(code)
        self.app._record_request(self, self._status)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.client_address[0], format % args)

    def handle_expect_100(self) -> bool:
        return True  # bodies are never read: answer at once

    def end_headers(self) -> None:
        self._headers_sent = True
        super().end_headers()

    def handle_one_request(self) -> None:
        since = self.server.wait_head(self.request)  # type: ignore[attr-defined]
        if since is None:  # dropped to make room
            self.close_connection = True
            return
        self._head_reader.deadline = since + self.app.head_timeout
        self._status = None
        self._sent = 0
        self._note = ""
        self._mac = "-"
        self._headers_sent = False
        self._started = time.perf_counter()
        self.headers = None  # type: ignore[assignment]  # set again by parse_request
        try:
            super().handle_one_request()
        finally:
            if self._status is not None:
                self.app._record(self)

    def parse_request(self) -> bool:
        self._head_reader.deadline = None
        if not self.server.got_head(self.request):  # type: ignore[attr-defined]
            self.close_connection = True
            return False
        if not super().parse_request():
            return False
        for arch in ARCHS:
            mac = self.headers.get(f"x-{arch}-STA-MAC")
            if mac:
                self._mac = clean(mac.strip(), 40)
                break
        if len(self.requestline.split()) == 2:
            self.send_error(HTTPStatus.BAD_REQUEST, "HTTP/0.9 requests are not supported")
            return False
        if self.command not in ("GET", "HEAD"):
            self._error(
                HTTPStatus.METHOD_NOT_ALLOWED,
                f"Method {self.command} is not supported: use GET or HEAD",
                headers=(("Allow", "GET, HEAD"),),
                close=True,
            )
            return False
        return self._drain_body()

    def _drain_body(self) -> bool:
        """Read and drop a small request body so the connection can be reused."""
        if self.headers.get("Transfer-Encoding") is not None:
            self.close_connection = True
            return True
        length = self.headers.get("Content-Length")
        if length is None:
            return True
        if not _DIGITS.fullmatch(length.strip()):
            self.send_error(HTTPStatus.BAD_REQUEST, f"Bad Content-Length {length!r}")
            return False
        size = int(length)
        if size > MAX_DRAINED_BODY:
            self.close_connection = True
        elif size:
            self.rfile.read(size)
        return True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Protocol-level errors (bad request line, headers too long...): reply and close."""
        self._error(code, message or HTTPStatus(code).phrase, close=True)

    def _reply(
        self,
        code: int,
        body: bytes = b"",
        content_type: str = "text/plain; charset=utf-8",
        headers: tuple[tuple[str, str], ...] = (),
        reason: str | None = None,
        close: bool = False,
    ) -> None:
        self.send_response(code, reason)
        for name, value in headers:
            self.send_header(name, value)
        if code != HTTPStatus.NOT_MODIFIED:
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if body and self.command != "HEAD" and code != HTTPStatus.NOT_MODIFIED:
            self.wfile.write(body)
            self._sent += len(body)

    def _error(
        self,
        code: int,
        message: str,
        headers: tuple[tuple[str, str], ...] = (),
        note: str = "",
        close: bool = False,
    ) -> None:
        self._note = note or message
        reason = clean(message, 120)
        self._reply(code, (message + "\n").encode(), headers=headers, reason=reason, close=close)

    # --- requests -------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        try:
            target = self._target()
            if target is None:
                return
            if self.app.credentials is not None and not self._authorized():
                self._error(
                    HTTPStatus.UNAUTHORIZED,
                    "Authentication required",
                    headers=(("WWW-Authenticate", 'Basic realm="acupdate", charset="UTF-8"'),),
                )
                return
            path, _, query = target.partition(b"?")
            if path == b"/_catalog":
                self._catalog(query)
            else:
                self._image(path)
        except OSError as err:  # the client went away, or stopped reading
            self._note = f"aborted: {err}"
            self.close_connection = True
        except Exception:
            log.exception("error answering %s", clean(self.requestline))
            if self._headers_sent:
                self.close_connection = True
            else:
                self._error(HTTPStatus.INTERNAL_SERVER_ERROR, "Internal server error", close=True)

    def _target(self) -> bytes | None:
        """The request target as raw bytes, in origin form (``/path?query``)."""
        raw = self.requestline.split()[1].encode("latin-1")
        if _ABSOLUTE_FORM.match(raw):
            rest = raw.split(b"://", 1)[1]
            slash = rest.find(b"/")
            raw = rest[slash:] if slash >= 0 else b"/"
        elif raw == b"*":
            self.send_error(HTTPStatus.BAD_REQUEST, "Bad request target '*'")
            return None
        elif not raw.startswith(b"/"):
            raw = b"/" + raw
        return raw

    def _authorized(self) -> bool:
        scheme, _, token = self.headers.get("Authorization", "").strip().partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            given = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        assert self.app.credentials is not None
        return hmac.compare_digest(given, self.app.credentials)

    def _catalog(self, query: bytes) -> None:
        params = parse_query(query)
        op = params.get(b"op")
        if op is None:
            self._error(HTTPStatus.FORBIDDEN, "Invalid catalog request: no 'op' parameter")
            return
        if op != b"list":
            self._error(HTTPStatus.FORBIDDEN, f"Unknown catalog operation {clean(repr(op))}")
            return
        rel = params.get(b"path") or b"."
        try:
            folder = resolve(self.app.root, rel)
        except PathRefused as err:
            self._error(HTTPStatus.FORBIDDEN, TRAVERSAL, note=f"{TRAVERSAL}: {clean(str(err))}")
            return
        if not os.path.isdir(folder):
            self._error(HTTPStatus.NOT_FOUND, f"No such folder in the catalog: {clean(repr(rel))}")
            return
        try:
            entries = list_folder(folder, self.app.root, self.app.md5 if self.app.sha256 else None)
        except PermissionError:
            self._error(HTTPStatus.FORBIDDEN, f"The server may not read folder {clean(repr(rel))}")
            return
        except OSError as err:
            self._error(HTTPStatus.NOT_FOUND, f"Cannot list {clean(repr(rel))}: {err.strerror}")
            return
        body = json.dumps(entries).encode()
        self._note = f"{len(entries)} entries"
        self._reply(HTTPStatus.OK, body, content_type="application/json")

    def _identity(self) -> str | None:
        """The device's architecture, or None after refusing the request (403)."""
        agent = self.headers.get("User-Agent", "")
        arch = next((a for a in ARCHS if agent.startswith(f"{a}-http-Update")), None)
        if arch is None:
            problem = f"User-Agent {clean(repr(agent), 80)} is not an HTTPUpdate client"
        else:
            missing = [
                f"x-{arch}-{name}"
                for name in IDENTITY_HEADERS
                if self.headers.get(f"x-{arch}-{name}") is None
            ]
            if not missing:
                return arch
            problem = "missing header(s) " + ", ".join(missing)
        self._error(
            HTTPStatus.FORBIDDEN,
            "The request is available only from the ESP8266 or ESP32 HTTP updater",
            note=problem,
        )
        return None

    def _image(self, path: bytes) -> None:
        arch = self._identity()
        if arch is None:
            return
        rel = decode(path)[1:]
        try:
            real = resolve(self.app.root, rel)
        except PathRefused as err:
            self._error(HTTPStatus.FORBIDDEN, TRAVERSAL, note=f"{TRAVERSAL}: {clean(str(err))}")
            return
        shown = clean(repr(os.fsdecode(rel)))
        try:
            fd = open_regular(real) if rel and not rel.endswith(b"/") else None
        except PermissionError:
            self._error(HTTPStatus.FORBIDDEN, f"The server may not read {shown}")
            return
        except OSError:
            fd = None
        if fd is None:
            self._error(HTTPStatus.NOT_FOUND, f"No such file in the catalog: {shown}")
            return
        with open(fd, "rb", buffering=0) as file:
            try:
                (md5, sha256), st = self.app.md5.digests(real, fd)
            except FileChanging as err:
                self._error(
                    HTTPStatus.SERVICE_UNAVAILABLE,
                    "The file is being replaced: retry later",
                    headers=(("Retry-After", "5"),),
                    note=str(err),
                )
                return
            except OSError as err:
                log.error("cannot read %s: %s", real, err)
                problem = f"Cannot read {shown}: {err.strerror}"
                self._error(HTTPStatus.INTERNAL_SERVER_ERROR, problem)
                return
            self._send_image(file, os.path.basename(real), (md5, sha256), st, arch)

    def _send_image(
        self, file: FileIO, name: str, digests: tuple[str, str], st: os.stat_result, arch: str
    ) -> None:
        size = st.st_size
        md5 = digests[0]
        tags: tuple[tuple[str, str], ...] = (
            ("x-MD5", md5),
            ("ETag", f'"{md5}"'),
            ("Last-Modified", email.utils.formatdate(st.st_mtime, usegmt=True)),
            ("Accept-Ranges", "bytes"),
        )
        if self.app.sha256:
            tags += (("x-SHA256", digests[1]),)
        running = self.headers.get(f"x-{arch}-sketch-md5", "").strip().lower()
        if running == md5 or f'"{md5}"' in self.headers.get("If-None-Match", ""):
            self._note = "device already runs this image"
            self._reply(HTTPStatus.NOT_MODIFIED, headers=tags)
            return
        code, first, last = HTTPStatus.OK, 0, size - 1
        wanted = self.headers.get("Range")
        if wanted is not None:
            try:
                span = parse_range(wanted, size)
            except BadRange as err:
                self._error(HTTPStatus.BAD_REQUEST, f"Bad Range header: {clean(str(err))}")
                return
            except Unsatisfiable as err:
                self._error(
                    HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE,
                    f"Range not satisfiable: {err}",
                    headers=(("Content-Range", f"bytes */{size}"),),
                )
                return
            if span is not None:
                code, (first, last) = HTTPStatus.PARTIAL_CONTENT, span
        length = last - first + 1
        self.send_response(code)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Disposition", content_disposition(name))
        self.send_header("Content-Length", str(length))
        if code == HTTPStatus.PARTIAL_CONTENT:
            self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
            self._note = f"bytes {first}-{last}/{size}"
        for header, value in tags:
            self.send_header(header, value)
        self.end_headers()
        if self.command == "HEAD":
            return
        self._stream(file, first, length)

    def _stream(self, file: FileIO, offset: int, length: int) -> None:
        """Send ``length`` bytes from ``offset`` (sendfile; a small buffer over TLS)."""
        end = offset + length
        while offset < end:
            file.seek(offset)
            n = self.connection.sendfile(file, offset, min(SEND_CHUNK, end - offset))
            if n == 0:
                self._note = f"the file shrank while sending: {end - offset} bytes missing"
                self.close_connection = True
                return
            offset += n
            self._sent += n
