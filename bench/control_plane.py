"""The e2e tier's real control plane: start time (etcd, kube-apiserver ready,
controller-manager and scheduler started) and each component's resident memory once idle."""

from __future__ import annotations

import argparse
import datetime
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cold_start import machine, print_table
from player.controlplane import ControlPlane


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="sts-agent-bench-cp-"))
    starts: dict[str, list[float]] = {}
    memory: dict[str, list[float]] = {}
    try:
        for run in range(args.runs):
            plane = ControlPlane(base / str(run))
            started = time.perf_counter()
            plane.start()
            starts.setdefault("control plane start (PKI, etcd, API server /readyz, "
                              "controllers, scheduler)", []).append(
                time.perf_counter() - started)
            try:
                idle_until = time.monotonic() + args.idle_seconds
                while time.monotonic() < idle_until:
                    time.sleep(0.5)  # idling on purpose: memory is read once settled
                for name, proc in plane.procs.items():
                    assert proc.process is not None
                    memory.setdefault(f"{name} VmRSS after {args.idle_seconds:g} s idle",
                                      []).append(rss_mib(proc.process.pid))
            finally:
                plane.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"Date: {datetime.date.today().isoformat()}; machine: {machine()}; "
          f"{args.runs} runs, each a fresh control plane (PKI generated anew)\n")
    print_table(starts, digits=2)
    print()
    print_table(memory, unit="MiB", digits=0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
