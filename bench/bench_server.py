"""Benchmark the update servers of a fleet: many devices download one image at once.

One run loads, in turn, ``python -m tools.server`` (threads) and Debian's nginx serving the
same catalog through ``acupdate-server export`` (its generated configuration, run
unprivileged), each on 127.0.0.1, with rounds of 100, 500 and 1000 concurrent downloads of
a 1.5 MiB image: each client (a thread with its own connection, all released together)
sends the ESP32 HTTPUpdate request headers and checks the MD5 of the body it received
against x-MD5 and against the file. For each server and round it prints how many downloads
were complete and MD5-correct, the p50 and p99 download time, the wall time and the peak
memory of the server's processes (VmHWM, reset before the round; the sum over nginx's
master and workers).

Target: 1000/1000 correct from nginx (exit status 1 otherwise). tools.server runs with
``--max-clients`` as large as the round (its default is 512).

    .venv/bin/python bench/bench_server.py [--clients 100,500,1000] [--size-mib 1.5]
        [--servers tools.server,nginx] [--also 'COMMAND ...']

``--also`` adds a server started by COMMAND (given tools.server's -d/-p/-b/-l options; it
prints its host:port on stderr), to compare another implementation under the same load.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tools.server.nginxrun import serve  # noqa: E402

MIB = 1024 * 1024
READ_CHUNK = 64 * 1024
DEVICE = {
    "User-Agent": "ESP32-http-Update",
    "Cache-Control": "no-cache",
    "x-ESP32-AP-MAC": "24:0A:C4:FF:FF:FF",
    "x-ESP32-free-space": str(4 * MIB),
    "x-ESP32-sketch-size": str(MIB),
    "x-ESP32-sketch-md5": "0" * 32,
    "x-ESP32-chip-size": str(4 * MIB),
    "x-ESP32-sdk-version": "v5.2.2",
    "x-ESP32-mode": "sketch",
}

# seconds, status, x-MD5, MD5 of the body, length, when it started and ended (perf_counter)
Result = tuple[float, int, str, str, int, float, float]


def peak(pids: list[int]) -> int:
    """The sum of VmHWM over ``pids``, in bytes."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def reset_peak(pids: list[int]) -> None:
    """Make each VmHWM start again from the current VmRSS (Linux: clear_refs 5)."""
    for pid in pids:
        try:
            with open(f"/proc/{pid}/clear_refs", "w") as refs:
                refs.write("5")
        except OSError:
            pass


def children(pid: int) -> list[int]:
    found = [pid]
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as stat:
                    fields = stat.read().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(name))
    return found


def download(port: int, index: int, start: threading.Barrier) -> Result:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {**DEVICE, "x-ESP32-STA-MAC": f"24:0A:C4:00:{index >> 8:02X}:{index & 255:02X}"}
    try:
        conn.connect()
        start.wait(120)
        began = time.perf_counter()
        conn.request("GET", "/firmware.bin", headers=headers)
        response = conn.getresponse()
        digest = hashlib.md5()
        length = 0
        while chunk := response.read(READ_CHUNK):
            digest.update(chunk)
            length += len(chunk)
        ended = time.perf_counter()
        got = (response.status, response.getheader("x-MD5", ""), digest.hexdigest(), length)
        return (ended - began, *got, began, ended)
    finally:
        conn.close()


def run_round(port: int, clients: int) -> tuple[list[Result | BaseException], float]:
    """``clients`` downloads released at the same moment: one result each, the wall time
    (from the first request sent to the last body received)."""
    start = threading.Barrier(clients)
    results: list[Result | BaseException] = [RuntimeError("did not finish")] * clients

    def client(i: int) -> None:
        try:
            results[i] = download(port, i, start)
        except BaseException as err:  # reported as a failed download
            results[i] = err

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done = [r for r in results if not isinstance(r, BaseException)]
    wall = max(r[6] for r in done) - min(r[5] for r in done) if done else 0.0
    return results, wall


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def start_command(command: list[str], catalog: Path, log: Path) -> tuple[Callable[[], int], int]:
    """Start a server command given tools.server's options; (stop, port)."""
    command = [*command, "-d", str(catalog), "-b", "127.0.0.1", "-p", "0", "-l", "WARNING"]
    with open(log, "wb") as sink:
        proc = subprocess.Popen(command, cwd=REPO, stdout=sink, stderr=sink)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        match = re.search(rb"127\.0\.0\.1:(\d+)", log.read_bytes())
        if match:
            break
        if proc.poll() is not None:
            raise SystemExit(f"{command[0]} did not start:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)  # a benchmark's startup poll, not a test's synchronisation
    else:
        proc.kill()
        raise SystemExit(f"{command} did not start:\n{log.read_text(errors='replace')}")

    def stop() -> int:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()

    stop.pid = proc.pid  # type: ignore[attr-defined]
    return stop, int(match.group(1))


def bench_server(
    name: str, port: int, pids: Callable[[], list[int]], rounds: list[int], size: int, md5: str
) -> list[tuple[str, int, int, list[float], float, int]]:
    rows = []
    for clients in rounds:
        reset_peak(pids())
        results, wall = run_round(port, clients)
        memory = peak(pids())
        good = [
            r
            for r in results
            if not isinstance(r, BaseException) and r[1:5] == (200, md5, md5, size)
        ]
        bad = [r for r in results if isinstance(r, BaseException) or r not in good]
        for failure in bad[:3]:
            print(f"  {name}, {clients} clients, failed: {failure!r}"[:300])
        rows.append((name, clients, len(good), [r[0] for r in good], wall, memory))
        print_row(rows[-1], size)
    return rows


def print_row(row: tuple[str, int, int, list[float], float, int], size: int) -> None:
    name, clients, good, times, wall, memory = row
    p50 = f"{percentile(times, 50):7.2f}" if times else "      -"
    p99 = f"{percentile(times, 99):7.2f}" if times else "      -"
    rate = good * size / wall / MIB if wall else 0
    print(
        f"{name:<14} {clients:>7} {good:>5}/{clients:<5} {p50} {p99} {wall:8.2f} "
        f"{rate:8.0f} {memory / MIB:9.1f}",
        flush=True,
    )


def run(args: argparse.Namespace) -> int:
    size = int(args.size_mib * MIB)
    rounds = [int(n) for n in args.clients.split(",")]
    servers = args.servers.split(",")
    base = Path(tempfile.mkdtemp(prefix="acupdate-bench-"))
    base.chmod(0o755)  # nginx runs as nobody under root: the files must be readable
    try:
        catalog = base / "catalog"
        catalog.mkdir()
        data = b"\xe9" + os.urandom(size - 1)
        md5 = hashlib.md5(data).hexdigest()
        (catalog / "firmware.bin").write_bytes(data)
        del data
        day_ago = time.time() - 86400
        os.utime(catalog / "firmware.bin", (day_ago, day_ago))
        print(
            f"update-server benchmark: {', '.join(map(str, rounds))} concurrent downloads of a "
            f"{size / MIB:.2f} MiB image with ESP32 headers, over HTTP on loopback; "
            f"{os.cpu_count()} CPUs shared by the server and the clients"
        )
        print(
            f"{'server':<14} {'clients':>7} {'correct':>11} {'p50 s':>7} {'p99 s':>7} "
            f"{'wall s':>8} {'MiB/s':>8} {'peak MiB':>9}"
        )
        rows = []
        for name in servers + (["also"] if args.also else []):
            if name == "tools.server":
                command = [sys.executable, "-m", "tools.server", "--max-clients", str(max(rounds))]
                stop, port = start_command(command, catalog, base / "server.log")
                pid: int = stop.pid  # type: ignore[attr-defined]
                rows += bench_server(name, port, lambda p=pid: [p], rounds, size, md5)
                code = stop()
                print(f"{'':<14} (tools.server exit status after SIGTERM: {code})")
            elif name == "nginx":
                nginx, port, _ = serve(catalog, base / "site")
                with nginx:
                    rows += bench_server(name, port, lambda n=nginx: n.pids, rounds, size, md5)
                errors = (base / "site" / "run" / "error.log").read_text(errors="replace")
                if errors.strip():
                    print("nginx error log:\n" + errors[-2000:])
            elif name == "also":
                stop, port = start_command(shlex.split(args.also), catalog, base / "also.log")
                pid = stop.pid  # type: ignore[attr-defined]
                rows += bench_server("also", port, lambda p=pid: children(p), rounds, size, md5)
                stop()
            else:
                raise SystemExit(f"unknown server {name!r}: tools.server or nginx")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    checks = [
        (good == clients, f"nginx: {good}/{clients} complete and MD5-correct")
        for name, clients, good, *_ in rows
        if name == "nginx"
    ]
    for ok, text in checks:
        print(("PASS " if ok else "FAIL ") + text)
    return 0 if all(ok for ok, _ in checks) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--clients", default="100,500,1000", help="concurrent downloads per round (100,500,1000)"
    )
    parser.add_argument("--size-mib", type=float, default=1.5, help="image size in MiB (1.5)")
    parser.add_argument(
        "--servers", default="tools.server,nginx", help="servers to load (tools.server,nginx)"
    )
    parser.add_argument("--also", metavar="COMMAND", help="another server command to compare")
    args = parser.parse_args(argv)
    if args.size_mib <= 0 or not re.fullmatch(r"[0-9]+(,[0-9]+)*", args.clients):
        parser.error("--size-mib must be positive, --clients a list of counts")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
