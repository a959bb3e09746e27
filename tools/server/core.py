"""The update server: a threaded HTTP(S) server over one catalog folder.

``UpdateServer`` is the programmatic API (tests, the demo, the CLI): it checks
its settings when it is made, listens when started, and serves each
connection in its own thread until stopped. TLS handshakes happen in the
connection's thread, so a slow client never holds up the others.

Slow and idle clients cannot starve the devices: a connection has ``head_timeout``
seconds to complete its TLS handshake and request head (counted from when the server
starts waiting for it, so it bounds idle kept-alive connections too), and when
``max_clients`` connections are open a new one takes the place of the one that has
waited longest for its request head; only when every connection is busy answering is
a new one refused (503).
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import socketserver
import ssl
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple

from tools.cli import CLIError

from .handler import UpdateRequestHandler, clean
from .md5cache import RACY_NS, Md5Cache

log = logging.getLogger("acupdate.server")
access_log = logging.getLogger("acupdate.server.access")

BUSY_REPLY = (
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nContent-Length: 0\r\n"
    b"Connection: close\r\n\r\n"
)


EVICTIONS_EVERY = 10.0  # seconds between two warnings about dropped connections
LINGER_SECONDS = 1.0
LINGER_BYTES = 1 << 20


class ServerError(CLIError):
    """A setting the server cannot work with (bad folder, port in use, unreadable cert...);
    on the command line: one line, exit status 2."""


class RequestRecord(NamedTuple):
    """One request as the server saw it (``headers`` keep the client's spelling)."""

    method: str
    path: str
    headers: dict[str, str]
    status: int


class _TCPServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    block_on_close = False  # stop() waits for connections itself, with a deadline
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, app: UpdateServer, family: int, address: tuple[Any, ...]) -> None:
        self.address_family = family
        self.app = app
        self.lock = threading.Condition()
        self.active: dict[socket.socket, socket.socket] = {}
        # Connections waiting for a request head (or their TLS handshake), oldest first;
        # and those dropped to make room, which no longer count against max_clients.
        self.waiting: dict[socket.socket, float] = {}
        self.evicted: set[socket.socket] = set()
        self.evictions = 0
        self.evictions_said = 0  # how many the last warning had counted
        self.evictions_told = -EVICTIONS_EVERY  # when it was written (time.monotonic())
        self.tls_keys: dict[socket.socket, socket.socket] = {}  # TLS socket -> accepted one
        self.closing = False
        super().__init__(address, UpdateRequestHandler, bind_and_activate=False)

    def process_request(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        dropped = None
        with self.lock:
            busy = self.closing
            if not busy and len(self.active) - len(self.evicted) >= self.app.max_clients:
                oldest = next(iter(self.waiting), None)
                if oldest is None:
                    busy = True
                else:
                    del self.waiting[oldest]
                    self.evicted.add(oldest)
                    self.evictions += 1
                    dropped = self.active.get(oldest)
            if not busy:
                self.active[request] = request
                self.waiting[request] = time.monotonic()
        if dropped is not None:
            log.debug("%s: dropped to make room (--max-clients reached)", _peer(dropped))
            now = time.monotonic()
            if now - self.evictions_told >= EVICTIONS_EVERY:  # one line, not one per drop
                log.warning(
                    "--max-clients %d reached: dropped %d connection(s) that waited longest "
                    "for their request head (%d since start)",
                    self.app.max_clients,
                    self.evictions - self.evictions_said,
                    self.evictions,
                )
                self.evictions_told, self.evictions_said = now, self.evictions
            try:  # at the OS level: its thread's read ends at once (a TLS one too)
                socket.socket.shutdown(dropped, socket.SHUT_RDWR)
            except OSError:
                pass
        if busy:
            self._refuse(request, client_address)
            return
        self.app._changed_now()  # for wait_for(): one more connection open, and waiting
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._forget(request)
            raise

    def _refuse(self, request: socket.socket, client_address: tuple[Any, ...]) -> None:
        log.warning(
            "%s refused: %d connections already open (--max-clients)",
            client_address[0],
            self.app.max_clients,
        )
        try:  # without blocking: this is the thread that accepts connections
            request.setblocking(False)
            _drop_pending(request)
            if self.app.ssl_context is None:
                request.send(BUSY_REPLY)
            request.shutdown(socket.SHUT_WR)
            _drop_pending(request)
        except OSError:
            pass
        self.close_request(request)

    def _forget(self, request: socket.socket) -> None:
        with self.lock:
            self.active.pop(request, None)
            self.waiting.pop(request, None)
            self.evicted.discard(request)
            self.lock.notify_all()
        self.app._changed_now()

    def wait_head(self, conn: socket.socket) -> float | None:
        """The connection (as its handler has it) waits for a request head: evictable from
        now on, or since it was accepted. The moment it started waiting; None when it was
        dropped to make room."""
        with self.lock:
            key = self.tls_keys.get(conn, conn)
            if key in self.evicted or key not in self.active:
                return None
            since = self.waiting.setdefault(key, time.monotonic())
        self.app._changed_now()
        return since

    def got_head(self, conn: socket.socket) -> bool:
        """The connection's request head is complete: no longer evictable. False when it
        was dropped to make room in the meantime."""
        with self.lock:
            key = self.tls_keys.get(conn, conn)
            self.waiting.pop(key, None)
            return key not in self.evicted

    def process_request_thread(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._forget(request)

    def finish_request(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        context = self.app.ssl_context
        if context is None:
            self.RequestHandlerClass(request, client_address, self)  # type: ignore[arg-type]
            return
        with self.lock:
            since = self.waiting.get(request, time.monotonic())
        left = since + self.app.head_timeout - time.monotonic()
        try:
            if left <= 0:
                raise TimeoutError("no time left for the TLS handshake")
            # The timeout bounds the whole handshake (CPython's deadline), not each read.
            request.settimeout(min(left, self.app.timeout))
            conn = context.wrap_socket(request, server_side=True)
        except (OSError, ValueError) as err:
            log.debug("%s: TLS handshake failed: %s", client_address[0], err)
            return
        with self.lock:
            self.active[request] = conn
            self.tls_keys[conn] = request
            closing = self.closing or request in self.evicted
        try:
            if not closing:
                self.RequestHandlerClass(conn, client_address, self)  # type: ignore[arg-type]
        finally:
            with self.lock:
                self.tls_keys.pop(conn, None)
            self.shutdown_request(conn)

    def shutdown_request(self, request) -> None:  # type: ignore[no-untyped-def]
        """Close after the reply, reading what the client still sends first.

        Closing a socket with unread data makes the kernel send a reset, which
        can destroy the reply (say a 431 for a huge header) before the client
        reads it: "lingering close", bounded in time and bytes.
        """
        try:
            request.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        else:
            _linger(request)
        self.close_request(request)

    def handle_error(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        error = sys.exc_info()[1]
        if isinstance(error, OSError):  # a client that hung up or timed out: routine
            log.debug("%s: connection ended: %s", client_address[0], error)
        else:
            log.exception("unexpected error serving %s", client_address[0])

    def close_connections(self, timeout: float) -> bool:
        """Stop accepting, cut open connections and wait for their threads to end."""
        with self.lock:
            self.closing = True
            conns = list(self.active.values())
        for conn in conns:
            try:  # at the OS level: leaves a TLS object in use by its thread alone
                socket.socket.shutdown(conn, socket.SHUT_RDWR)
            except OSError:
                pass
        with self.lock:
            return self.lock.wait_for(lambda: not self.active, timeout)


class UpdateServer:
    """Serve ``catalog_dir`` to AutoConnect/HTTPUpdate clients.

    >>> with UpdateServer("firmware", port=0) as srv:
    ...     print(srv.url)

    ``port=0`` picks a free port (read ``srv.port`` after ``start()``).
    ``cert``/``key`` (PEM files) turn on HTTPS; ``user``/``password`` turn on
    HTTP basic authentication for every request; ``head_timeout`` bounds the time a
    connection may take for its TLS handshake and each request head (idle time before a
    kept-alive request included); ``timeout`` bounds each read and write after that;
    ``max_clients`` the connections open at once (see the module's docstring); ``sha256``
    adds the file's
    SHA-256 (hex) to image replies (an x-SHA256 header) and to each bin entry of
    the catalog (``md5`` and ``sha256`` fields; listing hashes each image once, from
    the digest cache the image replies share). Raises ServerError for settings it
    cannot use.

    For tests: ``requests`` keeps the last ``history`` requests as
    RequestRecord(method, path, headers, status), recorded before the reply
    is sent (a client that has its reply finds its request there).
    ``access_log`` keeps the last ``history`` access-log lines, each written
    once its reply is sent or aborted: ``wait_requests(n)`` waits until
    ``request_count`` lines were written, ``wait_for(predicate)`` for any
    condition. ``md5_computations`` counts whole-file hashes since start,
    ``open_connections`` the connections being served. ``history=0`` keeps
    nothing (the CLI).
    """

    def __init__(
        self,
        catalog_dir: str | os.PathLike[str] = ".",
        host: str = "127.0.0.1",
        port: int = 0,
        cert: str | os.PathLike[str] | None = None,
        key: str | os.PathLike[str] | None = None,
        user: str | None = None,
        password: str | None = None,
        *,
        timeout: float = 30.0,
        max_clients: int = 512,
        head_timeout: float = 10.0,
        history: int = 1000,
        racy_ns: int = RACY_NS,
        sha256: bool = False,
    ) -> None:
        self.root = _catalog_root(catalog_dir)
        self.host = host
        if not 0 <= port <= 65535:
            raise ServerError(f"port {port} is not between 0 and 65535")
        self._wanted_port = self._port = port
        self.ssl_context = _tls_context(cert, key)
        self.credentials = _credentials(user, password)
        if timeout <= 0:
            raise ServerError(f"timeout must be positive, got {timeout}")
        if max_clients < 1:
            raise ServerError(f"max_clients must be at least 1, got {max_clients}")
        if head_timeout <= 0:
            raise ServerError(f"head_timeout must be positive, got {head_timeout}")
        self.timeout = timeout
        self.max_clients = max_clients
        self.head_timeout = head_timeout
        self.md5 = Md5Cache(racy_ns=racy_ns)
        self.sha256 = sha256
        self.access_log: deque[str] = deque(maxlen=history)
        self.requests: deque[RequestRecord] = deque(maxlen=history)
        self.request_count = 0
        self._changed = threading.Condition()
        self._server: _TCPServer | None = None
        self._thread: threading.Thread | None = None

    # --- life cycle -----------------------------------------------------------

    def start(self) -> UpdateServer:
        """Listen, then serve in a background thread; returns once listening."""
        if self._server is not None:
            raise ServerError("the server is already started")
        self._server = self._bind()
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"acupdate-server:{self.port}",
            daemon=True,
        )
        self._thread.start()
        log.info(
            "serving %s on %s (%s%s)",
            self.root,
            self.url,
            "HTTPS" if self.ssl_context else "HTTP",
            ", basic auth" if self.credentials else "",
        )
        return self

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop listening, close open connections, wait up to ``timeout`` s for them.

        Returns False when some connection thread was still busy at the deadline.
        """
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return True
        server.shutdown()
        thread.join()
        done = server.close_connections(timeout)
        if not done:
            log.warning("some connections were still busy %.1f s after stop", timeout)
        server.server_close()
        self._server = self._thread = None
        return done

    def __enter__(self) -> UpdateServer:
        return self.start() if self._server is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port listened on (the last one after stop; before start, the one asked for)."""
        return self._port

    @property
    def url(self) -> str:
        """Where a client on this machine reaches the server (no trailing slash)."""
        scheme = "https" if self.ssl_context else "http"
        host = self.host if self.host not in ("", "0.0.0.0", "::") else "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"{scheme}://{host}:{self.port}"

    @property
    def md5_computations(self) -> int:
        """How many times a whole file was hashed (cache misses)."""
        return self.md5.computations

    @property
    def evictions(self) -> int:
        """Connections dropped since start to make room (they waited longest for a head)."""
        server = self._server
        return server.evictions if server is not None else 0

    @property
    def waiting_connections(self) -> int:
        """Open connections waiting for a request head (or their TLS handshake)."""
        server = self._server
        return len(server.waiting) if server is not None else 0

    @property
    def open_connections(self) -> int:
        """Connections being served right now (keep-alive ones included)."""
        server = self._server
        return len(server.active) if server is not None else 0

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Wait until ``predicate()`` is true.

        Re-checked after every logged request, every connection opened or closed, and
        every connection that starts waiting for a request.
        """
        with self._changed:
            return self._changed.wait_for(predicate, timeout)

    def wait_requests(self, count: int, timeout: float = 5.0) -> bool:
        """Wait until ``request_count`` reaches ``count``."""
        return self.wait_for(lambda: self.request_count >= count, timeout)

    # --- internals ------------------------------------------------------------

    def _bind(self) -> _TCPServer:
        host = self.host or "0.0.0.0"
        try:
            infos = socket.getaddrinfo(
                host, self._wanted_port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
        except socket.gaierror as err:
            raise ServerError(f"cannot bind to {host!r}: {err.strerror}") from None
        family, _, _, _, address = infos[0]
        server = _TCPServer(self, family, address)
        try:
            server.server_bind()
            server.server_activate()
        except OSError as err:
            server.server_close()
            raise ServerError(_bind_problem(host, self._wanted_port, err)) from None
        return server

    def _changed_now(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def _record(self, handler: UpdateRequestHandler) -> None:
        status = handler._status
        assert status is not None
        elapsed = (time.perf_counter() - handler._started) * 1000
        command = handler.command or "-"
        words = handler.requestline.split()
        target = words[1] if len(words) > 1 else "-"
        line = (
            f"{handler.client_address[0]} {handler._mac} "
            f'"{clean(command, 20)} {clean(target)}" {status} {handler._sent} {elapsed:.1f}ms'
        )
        if handler._note:
            line += f" ({clean(handler._note)})"
        with self._changed:
            self.access_log.append(line)
            self.request_count += 1
            self._changed.notify_all()
        access_log.info("%s", line)

    def _record_request(self, handler: UpdateRequestHandler, status: int) -> None:
        """Keep the request as received, before its reply leaves (see ``requests``)."""
        words = handler.requestline.split()
        headers = handler.headers
        record = RequestRecord(
            handler.command or "-",
            words[1] if len(words) > 1 else "-",
            dict(headers.items()) if headers is not None else {},
            status,
        )
        with self._changed:
            self.requests.append(record)
            self._changed.notify_all()


def _peer(conn: socket.socket) -> str:
    try:
        return str(conn.getpeername()[0])
    except OSError:
        return "-"


def _drop_pending(conn: socket.socket) -> None:
    """Read what already arrived on a non-blocking socket (a reset would lose the reply)."""
    for _ in range(16):
        try:
            if not conn.recv(65536):
                return
        except BlockingIOError:
            return


def _linger(conn: socket.socket) -> None:
    deadline = time.monotonic() + LINGER_SECONDS
    drained = 0
    try:
        conn.settimeout(0.1)
        while drained < LINGER_BYTES and time.monotonic() < deadline:
            chunk = socket.socket.recv(conn, 65536)  # raw bytes, also under TLS
            if not chunk:
                return
            drained += len(chunk)
    except OSError:
        return


def _catalog_root(catalog_dir: str | os.PathLike[str]) -> str:
    path = os.fspath(catalog_dir)
    if not os.path.exists(path):
        raise ServerError(f"catalog folder {path!r} does not exist")
    if not os.path.isdir(path):
        raise ServerError(f"catalog folder {path!r} is not a folder")
    if not os.access(path, os.R_OK | os.X_OK):
        raise ServerError(f"catalog folder {path!r} is not readable by this user")
    return os.path.realpath(path)


def _tls_context(
    cert: str | os.PathLike[str] | None, key: str | os.PathLike[str] | None
) -> ssl.SSLContext | None:
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise ServerError("HTTPS needs both a certificate (--cert) and its private key (--key)")
    for what, path in (("certificate", cert), ("private key", key)):
        if not os.path.isfile(path):
            raise ServerError(f"{what} file {os.fspath(path)!r} does not exist")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as err:
        raise ServerError(
            f"cannot use certificate {os.fspath(cert)!r} with key {os.fspath(key)!r}: {err}"
        ) from None
    return context


def _credentials(user: str | None, password: str | None) -> bytes | None:
    if user is None and password is None:
        return None
    if not user or password is None:
        raise ServerError("basic authentication needs both a user name and a password")
    if ":" in user:
        raise ServerError(f"user name {user!r} contains ':', which basic authentication forbids")
    return f"{user}:{password}".encode()


def _bind_problem(host: str, port: int, err: OSError) -> str:
    where = f"{host}:{port}"
    if err.errno == errno.EADDRINUSE:
        return f"port {port} is already in use on {host} (another server?); choose --port"
    if err.errno == errno.EACCES:
        return f"not allowed to listen on {where} (ports below 1024 need privileges)"
    if err.errno == errno.EADDRNOTAVAIL:
        return f"{host} is not an address of this machine (--bind)"
    return f"cannot listen on {where}: {err.strerror or err}"
