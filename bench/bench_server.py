"""Benchmark acupdate's update server: many devices download one image at once.

Starts ``python -m tools.server`` in a subprocess on 127.0.0.1, then N clients
(threads, each on its own connection, released together) download a 1.5 MiB
image the way a device does (HTTPUpdate headers), each checking the MD5 of
what it received against x-MD5 and against the file. Measures the server
process's memory from /proc: VmRSS before the downloads and VmHWM (the peak,
reset just before the downloads) after them.

Targets: every download complete and MD5-correct; memory growth < 20 MiB.
Prints aggregate throughput, p50/p99 per-download time and PASS/FAIL lines;
exits 0 when every target passes, 1 otherwise.

    .venv/bin/python bench/bench_server.py [--clients 100] [--size-mib 1.5] [--tls]
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import math
import os
import re
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
GROWTH_LIMIT_MIB = 20.0
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


def proc_memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in bytes."""
    found = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                found[name] = int(value.split()[0]) * 1024
    return found


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds used by a process so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reset_peak(pid: int) -> bool:
    """Make VmHWM start again from the current VmRSS (Linux: clear_refs 5)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (needs the `cryptography` package)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "acupdate bench")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def start_server(catalog: Path, log: Path, extra: list[str]) -> tuple[subprocess.Popen, int]:
    command = [sys.executable, "-m", "tools.server", "-d", str(catalog), "-b", "127.0.0.1"]
    command += ["-p", "0", "-l", "WARNING", *extra]
    with open(log, "wb") as sink:
        proc = subprocess.Popen(command, cwd=REPO, stdout=sink, stderr=sink)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        match = re.search(rb"127\.0\.0\.1:(\d+)", log.read_bytes())
        if match:
            return proc, int(match.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.05)  # a benchmark's startup poll, not a test's synchronisation
    proc.kill()
    raise SystemExit(f"the server did not start:\n{log.read_text(errors='replace')}")


def download(
    port: int, context: ssl.SSLContext | None, index: int, start: threading.Barrier
) -> tuple[float, int, str, str, int]:
    """(seconds, status, x-MD5, MD5 of the body, body length) of one device's download."""
    if context is None:
        conn: http.client.HTTPConnection = http.client.HTTPConnection(
            "127.0.0.1", port, timeout=120
        )
    else:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=120, context=context)
    headers = {**DEVICE, "x-ESP32-STA-MAC": f"24:0A:C4:00:{index >> 8:02X}:{index & 255:02X}"}
    try:
        conn.connect()
        start.wait(60)
        began = time.perf_counter()
        conn.request("GET", "/firmware.bin", headers=headers)
        response = conn.getresponse()
        digest = hashlib.md5()
        length = 0
        while chunk := response.read(READ_CHUNK):
            digest.update(chunk)
            length += len(chunk)
        elapsed = time.perf_counter() - began
        return elapsed, response.status, response.getheader("x-MD5", ""), digest.hexdigest(), length
    finally:
        conn.close()


def run_round(
    port: int, context: ssl.SSLContext | None, clients: int
) -> list[tuple[float, int, str, str, int] | BaseException]:
    """``clients`` downloads released at the same moment; one result each."""
    start = threading.Barrier(clients)
    results: list[tuple[float, int, str, str, int] | BaseException] = [
        RuntimeError("did not finish")
    ] * clients

    def client(i: int) -> None:
        try:
            results[i] = download(port, context, i, start)
        except BaseException as err:  # reported as a failed download
            results[i] = err

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def run(args: argparse.Namespace) -> int:
    size = int(args.size_mib * MIB)
    with tempfile.TemporaryDirectory(prefix="acupdate-bench-") as tmp:
        folder = Path(tmp)
        catalog = folder / "catalog"
        catalog.mkdir()
        data = b"\xe9" + os.urandom(size - 1)
        expected = hashlib.md5(data).hexdigest()
        image = catalog / "firmware.bin"
        image.write_bytes(data)
        del data
        day_ago = time.time() - 86400
        os.utime(image, (day_ago, day_ago))  # a deployed image, not one being written
        extra = ["--max-clients", str(max(512, args.clients))]
        context = None
        if args.tls:
            cert, key = make_certificate(folder)
            extra += ["--cert", str(cert), "--key", str(key)]
            context = ssl.create_default_context(cafile=str(cert))
        proc, port = start_server(catalog, folder / "server.log", extra)
        try:
            before = proc_memory(proc.pid)
            cpu_before = proc_cpu(proc.pid)
            exact_peak = reset_peak(proc.pid)
            sampled_peak = before["VmRSS"]
            sampling = True

            def sample() -> None:
                nonlocal sampled_peak
                while sampling:
                    sampled_peak = max(sampled_peak, proc_memory(proc.pid)["VmRSS"])
                    time.sleep(0.002)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            results: list[tuple[float, int, str, str, int] | BaseException] = []
            first = time.perf_counter()
            for _ in range(args.rounds):
                results += run_round(port, context, args.clients)
            wall = time.perf_counter() - first
            sampling = False
            sampler.join()
            after = proc_memory(proc.pid)
            cpu = proc_cpu(proc.pid) - cpu_before
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
        log_text = (folder / "server.log").read_text(errors="replace")

    good = [
        r
        for r in results
        if not isinstance(r, BaseException) and r[1:] == (200, expected, expected, size)
    ]
    failures = [r for r in results if isinstance(r, BaseException) or r not in good]
    # VmHWM is updated lazily by the kernel: take the larger of it and the samples.
    peak = max(after["VmHWM"], sampled_peak)
    growth = (peak - before["VmRSS"]) / MIB
    times = [r[0] for r in good]
    total = len(results)
    transport = "HTTPS" if args.tls else "HTTP"
    print(
        f"acupdate-server benchmark: {args.rounds} round(s) of {args.clients} concurrent "
        f"downloads of a {size / MIB:.2f} MiB image over {transport} on loopback"
    )
    print(f"downloads: {len(good)}/{total} complete and MD5-correct")
    for failure in failures[:5]:
        print(f"  failed: {failure!r}")
    if good:
        moved = len(good) * size
        print(
            f"wall time {wall:.2f} s for {moved / MIB:.1f} MiB: aggregate "
            f"{moved / wall / 1e6:.1f} MB/s ({moved / wall / MIB:.1f} MiB/s)"
        )
        print(
            f"per download: p50 {percentile(times, 50) * 1000:.0f} ms, "
            f"p99 {percentile(times, 99) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms"
        )
    how = "VmHWM reset before the run" if exact_peak else "VmHWM since start"
    print(
        f"server memory: VmRSS before {before['VmRSS'] / MIB:.1f} MiB, peak {peak / MIB:.1f} MiB "
        f"(max of {how}: {after['VmHWM'] / MIB:.1f}, VmRSS sampled every 2 ms: "
        f"{sampled_peak / MIB:.1f}), VmRSS after {after['VmRSS'] / MIB:.1f} MiB, "
        f"growth {growth:.1f} MiB"
    )
    print(
        f"server CPU time during the downloads: {cpu:.2f} s "
        f"(this machine has {os.cpu_count()} CPUs; the clients share them)"
    )
    print(f"server exit status after SIGTERM: {code}")
    if "Traceback" in log_text or "ERROR" in log_text:
        print("server log has errors:\n" + log_text[-2000:])
    checks = [
        (len(good) == total, f"every download complete and MD5-correct ({len(good)}/{total})"),
        (
            growth < GROWTH_LIMIT_MIB,
            f"server memory growth {growth:.1f} MiB < {GROWTH_LIMIT_MIB:g} MiB",
        ),
        (code == 0, f"server stopped cleanly on SIGTERM (exit status {code})"),
    ]
    for ok, text in checks:
        print(("PASS " if ok else "FAIL ") + text)
    return 0 if all(ok for ok, _ in checks) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=100, help="concurrent downloads (100)")
    parser.add_argument("--size-mib", type=float, default=1.5, help="image size in MiB (1.5)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of downloads (1)")
    parser.add_argument("--tls", action="store_true", help="serve over HTTPS (self-signed)")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.rounds < 1 or args.size_mib <= 0:
        parser.error("--clients, --rounds and --size-mib must be positive")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
