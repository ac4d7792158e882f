"""/readyz of the sidecar next to the stores' own health endpoints, and sidecar memory."""

from __future__ import annotations

import argparse
import datetime
import http.client
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cold_start import machine
from player.harness import EtcdHarness, Harness, RqliteHarness

PRODUCTION_LIKE = {"AGENT_POLL_INTERVAL_SECONDS": "1", "AGENT_STALE_AFTER_SECONDS": "5",
                   "AGENT_STORE_TIMEOUT_SECONDS": "2"}


def probe_once(url: str) -> float:
    """One probe as a kubelet sends it: a new TCP connection, GET, read the body."""
    parts = urlsplit(url)
    started = time.perf_counter()
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=5)
    connection.request("GET", parts.path)
    response = connection.getresponse()
    response.read()
    connection.close()
    elapsed = time.perf_counter() - started
    if response.status not in (200, 503):
        raise RuntimeError(f"{url}: HTTP {response.status}")
    return elapsed


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--probes", type=int, default=2000, help="sequential probes per target")
    parser.add_argument("--flood-seconds", type=int, default=10)
    parser.add_argument("--memory-minutes", type=float, default=5.0)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian package wrk; `make bench` installs it)")
    workdir = Path(tempfile.mkdtemp(prefix="sts-agent-bench-"))
    harnesses: list[Harness] = [EtcdHarness(workdir / "etcd", sidecar_env=PRODUCTION_LIKE),
                                RqliteHarness(workdir / "rqlite", sidecar_env=PRODUCTION_LIKE)]
    try:
        for harness in harnesses:
            harness.start(3)
            for sidecar in harness.sidecars.values():
                sidecar.wait_ready(timeout=60)
        started = time.monotonic()
        etcd, rqlite = harnesses
        targets = {
            "sts-agent /readyz (etcd sidecar)": etcd.sidecars[1].url + "/readyz",
            "etcd /health": etcd.store_url(1) + "/health",
            "sts-agent /readyz (rqlite sidecar)": rqlite.sidecars[1].url + "/readyz",
            "rqlite /readyz": rqlite.store_url(1) + "/readyz",
        }
        sequential: dict[str, list[float]] = {name: [] for name in targets}
        rounds = 4
        for _ in range(rounds):  # interleaved rounds, so drift hits every target alike
            for name, url in targets.items():
                sequential[name].extend(probe_once(url) for _ in range(args.probes // rounds))
        floods = {name: flood(url, args.flood_seconds, 32) for name, url in targets.items()}
        pid = rqlite.sidecars[1].proc.process.pid  # type: ignore[union-attr]
        etcd_pid = etcd.sidecars[1].proc.process.pid  # type: ignore[union-attr]
        minute = 60.0
        while time.monotonic() - started < minute:
            time.sleep(1)  # letting the sidecars poll for a minute before the first reading
        rss_1 = (rss_mib(etcd_pid), rss_mib(pid))
        while time.monotonic() - started < args.memory_minutes * minute:
            time.sleep(1)  # and on to the second reading
        rss_5 = (rss_mib(etcd_pid), rss_mib(pid))
    finally:
        for harness in harnesses:
            harness.close()
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"Date: {datetime.date.today().isoformat()}; machine: {machine()}; "
          f"everything (3 etcd, 3 rqlite, 6 sidecars, the load) on the same 2 cores\n")
    print(f"Sequential probes, a new connection each (as a kubelet), {args.probes} per target:\n")
    print("| target | p50 ms | p99 ms | mean ms |")
    print("|---|---|---|---|")
    for name, values in sequential.items():
        print(f"| {name} | {statistics.median(values) * 1000:.3f} | "
              f"{percentile(values, 0.99) * 1000:.3f} | {statistics.mean(values) * 1000:.3f} |")
    print(f"\nFlood: wrk, 2 threads, 32 connections (keep-alive), {args.flood_seconds} s:\n")
    print("| target | requests/s | p50 | p99 |")
    print("|---|---|---|---|")
    for name, (rate, p50, p99) in floods.items():
        print(f"| {name} | {rate:,.0f} | {p50} | {p99} |")
    print("\nSidecar resident memory (VmRSS), polling once a second:\n")
    print("| sidecar | after 1 min | after "
          f"{args.memory_minutes:g} min |")
    print("|---|---|---|")
    print(f"| etcd | {rss_1[0]:.1f} MiB | {rss_5[0]:.1f} MiB |")
    print(f"| rqlite | {rss_1[1]:.1f} MiB | {rss_5[1]:.1f} MiB |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
