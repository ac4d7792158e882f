"""/readyz of the sidecar next to the stores' own health endpoints, and sidecar memory."""

from __future__ import annotations

import argparse
import datetime
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cold_start import machine
from player.stores.base import Harness
from player.stores.consul import ConsulHarness
from player.stores.etcd import EtcdHarness
from player.stores.galera import STATUS_PASSWORD, STATUS_USER, GaleraHarness
from player.stores.rqlite import RqliteHarness

PRODUCTION_LIKE = {"AGENT_POLL_INTERVAL_SECONDS": "1", "AGENT_STALE_AFTER_SECONDS": "5",
                   "AGENT_STORE_TIMEOUT_SECONDS": "2"}


def probe_once(url: str) -> float:
    """One probe as a kubelet sends it: a new TCP connection, GET, read to the end.

    A raw socket keeps the client's own cost (and noise) small next to the server's.
    """
    parts = urlsplit(url)
    request = (f"GET {parts.path} HTTP/1.1\r\nHost: {parts.hostname}\r\n"
               "Connection: close\r\n\r\n").encode()
    started = time.perf_counter()
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as connection:
        connection.sendall(request)
        head = chunk = connection.recv(65536)
        while chunk:
            chunk = connection.recv(65536)
    elapsed = time.perf_counter() - started
    if not head.startswith((b"HTTP/1.1 200", b"HTTP/1.1 503")):
        raise RuntimeError(f"{url}: {head[:40]!r}")
    return elapsed


def exec_probe(command: list[str]) -> float:
    """One exec probe as a kubelet runs it: a process started, waited for, exit 0."""
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def galera_probe(harness: Harness[Any], ordinal: int) -> list[str]:
    """The readiness probe Galera charts run: the mariadb client asking wsrep status."""
    host = harness.ip(ordinal)
    return ["mariadb", f"--host={host}", f"--user={STATUS_USER}",
            f"--password={STATUS_PASSWORD}", "-N", "-e",
            "SHOW GLOBAL STATUS LIKE 'wsrep_local_state'"]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def flood(url: str, seconds: int, connections: int) -> tuple[float, str, str]:
    """wrk at ``connections`` concurrency: (requests/s, p50, p99)."""
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url],
                         capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"\s50%\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    p99 = re.search(r"\s99%\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    return rate, p50, p99


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def sequential_and_flood(harness: Harness[Any], endpoint: str, label: str, args: argparse.Namespace,
                         results: dict[str, tuple[list[float], tuple[float, str, str]]]) -> None:
    """Measure one backend's sidecar next to the store's own endpoint, alone on the machine."""
    harness.start(3)
    for sidecar in harness.sidecars.values():
        sidecar.wait_ready(timeout=60)
    targets = {f"sts-agent /readyz ({label} sidecar)": harness.sidecars[1].url + "/readyz",
               f"{label} {endpoint}": harness.store_url(1) + endpoint}
    command = galera_probe(harness, 1) if label == "galera" else None
    samples: dict[str, list[float]] = {name: [] for name in targets}
    rounds = 4
    for _ in range(rounds):  # interleaved rounds, so drift hits both targets alike
        for name, url in targets.items():
            if command is not None and not url.startswith("http"):
                samples[name].extend(exec_probe(command) for _ in range(args.probes // rounds))
            else:
                samples[name].extend(probe_once(url) for _ in range(args.probes // rounds))
    for name, url in targets.items():
        # An exec probe has no connection to flood: no row for it.
        results[name] = (samples[name], flood(url, args.flood_seconds, 32)
                         if url.startswith("http") else (0.0, "-", "-"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--probes", type=int, default=2000, help="sequential probes per target")
    parser.add_argument("--flood-seconds", type=int, default=10)
    parser.add_argument("--memory-minutes", type=float, default=5.0)
    parser.add_argument("--stores", default="etcd,rqlite,consul,galera",
                        help="comma-separated stores to measure")
    args = parser.parse_args()
    stores = args.stores.split(",")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian package wrk; `make bench` installs it)")
    workdir = Path(tempfile.mkdtemp(prefix="sts-agent-bench-"))
    results: dict[str, tuple[list[float], tuple[float, str, str]]] = {}
    try:
        # Each store's own health endpoint; Consul's Helm chart probes /v1/status/leader;
        # Galera's charts exec the mariadb client (its "endpoint" is that exec probe).
        kinds: list[tuple[type[Harness[Any]], str]] = [
            (h, e) for h, e in ((EtcdHarness, "/health"), (RqliteHarness, "/readyz"),
                                (ConsulHarness, "/v1/status/leader"),
                                (GaleraHarness, "exec probe (mariadb client)"))
            if h.store in stores]
        for harness_class, endpoint in kinds:
            alone = harness_class(workdir / harness_class.store / "latency",
                                  sidecar_env=PRODUCTION_LIKE)
            try:
                sequential_and_flood(alone, endpoint, harness_class.store, args, results)
            finally:
                alone.close()
        # Memory: every measured cluster with its three sidecars polling, as in the tests.
        harnesses: list[Harness[Any]] = [
            h(workdir / h.store / "memory", sidecar_env=PRODUCTION_LIKE) for h, _ in kinds]
        try:
            for both in harnesses:
                both.start(3)
            started = time.monotonic()
            pids = [h.sidecars[1].proc.process.pid for h in harnesses]  # type: ignore[union-attr]
            minute = 60.0
            while time.monotonic() - started < minute:
                time.sleep(1)  # letting the sidecars poll for a minute before the first reading
            rss_1 = [rss_mib(pid) for pid in pids]
            while time.monotonic() - started < args.memory_minutes * minute:
                time.sleep(1)  # and on to the second reading
            rss_5 = [rss_mib(pid) for pid in pids]
        finally:
            for both in harnesses:
                both.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"Date: {datetime.date.today().isoformat()}; machine: {machine()}\n")
    print(f"Sequential probes, each on a new connection (as a kubelet sends them), "
          f"{args.probes} per target; each backend's 3 nodes and 3 sidecars running, "
          "the other backends stopped:\n")
    print("| target | p50 ms | p99 ms | mean ms |")
    print("|---|---|---|---|")
    for name, (values, _) in results.items():
        print(f"| {name} | {statistics.median(values) * 1000:.3f} | "
              f"{percentile(values, 0.99) * 1000:.3f} | {statistics.mean(values) * 1000:.3f} |")
    print(f"\nFlood: wrk, 2 threads, 32 connections (keep-alive), {args.flood_seconds} s:\n")
    print("| target | requests/s | p50 | p99 |")
    print("|---|---|---|---|")
    for name, (_, (rate, p50, p99)) in results.items():
        if p50 != "-":
            print(f"| {name} | {rate:,.0f} | {p50} | {p99} |")
    print("\nSidecar resident memory (VmRSS), polling once a second, every measured "
          "cluster running:\n")
    print(f"| sidecar | after 1 min | after {args.memory_minutes:g} min |")
    print("|---|---|---|")
    for (kind, _), before, after in zip(kinds, rss_1, rss_5, strict=True):
        print(f"| {kind.store} | {before:.1f} MiB | {after:.1f} MiB |")
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
