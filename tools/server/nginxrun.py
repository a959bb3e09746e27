"""Run Debian's nginx on an export's nginx.conf, in the foreground, for the tests and the
benchmark: started when it logs that its workers start (its listening sockets are open by
then), stopped with SIGQUIT (graceful), then SIGTERM.

As root (CI), nginx runs as an unprivileged user (``nobody``) altogether, master included:
the export's configuration needs no privilege, and this shows it. Its run folder (pid, logs,
temporary files) is then given to that user; the site must be readable by everyone.
"""

from __future__ import annotations

import os
import pwd
import selectors
import signal
import socket
import subprocess
import threading
import time
from types import TracebackType
from typing import IO, Any

from .export import Options, Report, export

NGINX = "/usr/sbin/nginx"
READY = b"start worker processes"
UNPRIVILEGED = "nobody"


class NginxError(Exception):
    """nginx did not start (its log says why) or is missing."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (another program may take it before nginx)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def serve(
    catalog: str | os.PathLike[str],
    out: str | os.PathLike[str],
    host: str = "127.0.0.1",
    attempts: int = 5,
    **options: Any,
) -> tuple[Nginx, int, Report]:
    """Export ``catalog`` to ``out`` listening on ``host`` and a free port, and start nginx
    on it: (the started Nginx, its port, the export's report). A port taken between the
    probe and nginx's bind is tried again with another."""
    for attempt in range(attempts):
        port = free_port(host)
        report = export(Options(os.fspath(catalog), os.fspath(out), f"{host}:{port}", **options))
        run = options.get("run_dir") or os.path.join(out, "run")
        nginx = Nginx(os.path.join(out, "nginx", "nginx.conf"), run_dir=run)
        try:
            return nginx.start(), port, report
        except NginxError as err:
            if "Address already in use" not in str(err) or attempt == attempts - 1:
                raise
    raise AssertionError("not reached")


class Nginx:
    """``with Nginx("/site/nginx/nginx.conf") as n: ...``; ``n.log`` is nginx's stderr."""

    def __init__(
        self,
        conf: str | os.PathLike[str],
        run_dir: str | os.PathLike[str] | None = None,
        nginx: str = NGINX,
    ) -> None:
        self.conf = os.path.abspath(conf)
        self.run_dir = run_dir
        self.nginx = nginx
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = b""
        self._drain: threading.Thread | None = None

    def start(self, timeout: float = 60.0) -> Nginx:
        if not os.access(self.nginx, os.X_OK):
            raise NginxError(
                f"{self.nginx} is missing: ./dev test installs it (tools.system_setup)"
            )
        user: str | None = None
        if os.geteuid() == 0:
            user = UNPRIVILEGED
            if self.run_dir is not None:
                owner = pwd.getpwnam(user)
                for folder, dirs, files in os.walk(self.run_dir):
                    for name in [folder, *(os.path.join(folder, n) for n in dirs + files)]:
                        os.chown(name, owner.pw_uid, owner.pw_gid)
        command = [self.nginx, "-c", self.conf, "-g", "error_log stderr notice;"]
        self.proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            user=user,
            group=pwd.getpwnam(user).pw_gid if user else None,
            extra_groups=[] if user else None,
        )
        assert self.proc.stderr is not None
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stderr, selectors.EVENT_READ)
            while READY not in self.log:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    self.stop()
                    raise NginxError(f"nginx did not start in {timeout:g} s:\n{self.text()}")
                chunk = os.read(self.proc.stderr.fileno(), 65536)
                if not chunk:
                    self.proc.wait()
                    raise NginxError(
                        f"nginx exited with status {self.proc.returncode}:\n{self.text()}"
                    )
                self.log += chunk
        # Keep reading its stderr: a full pipe would block nginx.
        self._drain = threading.Thread(target=self._read, args=(self.proc.stderr,), daemon=True)
        self._drain.start()
        return self

    def _read(self, pipe: IO[bytes]) -> None:
        while chunk := os.read(pipe.fileno(), 65536):
            self.log += chunk

    def text(self) -> str:
        return self.log.decode(errors="replace")

    @property
    def pids(self) -> list[int]:
        """The master's pid and its workers'."""
        if self.proc is None:
            return []
        found = [self.proc.pid]
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    with open(f"/proc/{name}/stat") as stat:
                        fields = stat.read().rpartition(")")[2].split()
                except OSError:
                    continue
                if int(fields[1]) == self.proc.pid:
                    found.append(int(name))
        return found

    def stop(self, timeout: float = 30.0) -> int:
        """Stop nginx (SIGQUIT, then SIGTERM, then SIGKILL); its exit status."""
        proc = self.proc
        if proc is None:
            return 0
        for signum in (signal.SIGQUIT, signal.SIGTERM, signal.SIGKILL):
            if proc.poll() is not None:
                break
            proc.send_signal(signum)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                continue
        assert proc.stderr is not None
        if self._drain is not None:
            self._drain.join(timeout)
            self._drain = None
        else:
            self.log += proc.stderr.read()
        proc.stderr.close()
        self.proc = None
        return proc.returncode

    def __enter__(self) -> Nginx:
        return self.start() if self.proc is None else self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()
