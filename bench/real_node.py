"""The real node: its start (containerd, registry, CoreDNS, kubelet → Node Ready), then
`kubectl apply -k` of each raft store's example → its three pods Ready, pulling the
images from the node's registry; the node's processes' memory with the pods running."""

from __future__ import annotations

import argparse
import datetime
import functools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cold_start import machine, print_table
from bench.readyz import rss_mib
from player.controlplane import ControlPlane
from player.realnode import RealNode
from player.wait import wait_until
from tests.e2e.test_real_node import applied, pods_ready

ROOT = Path(__file__).resolve().parents[1]
STORES = ("etcd", "rqlite", "consul")


def pids_of(pattern: str, under: Path) -> list[int]:
    """Processes whose command line has ``pattern`` and names a path under ``under``."""
    found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout
    pids = []
    for pid in found.split():
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(under) in cmdline:
            pids.append(int(pid))
    return pids


def shims(node: RealNode) -> list[int]:
    """containerd's shims for this node: children started with its socket's address."""
    assert node.runtime is not None
    return pids_of("containerd-shim", node.runtime.sockets)


def processes(node: RealNode) -> dict[str, list[int]]:
    """The node's processes by part (the pods' own are in their images' benchmarks)."""
    parts = {"kubelet": node.kubelet, "CoreDNS": node.coredns}
    found = {name: [proc.process.pid] for name, proc in parts.items()
             if proc is not None and proc.process is not None}
    if node.runtime is not None and node.runtime.process is not None:
        found["containerd"] = [node.runtime.process.pid]
        found["containerd's shims"] = shims(node)
    if node.registry is not None and node.registry.process is not None:
        found["docker-registry"] = [node.registry.process.pid]
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="sts-agent-bench-node-"))
    samples: dict[str, list[float]] = {}
    memory: dict[str, list[float]] = {}
    plane = ControlPlane(base / "control-plane").start()
    try:
        for run in range(args.runs):
            # A new machine's node: every image pulled from its registry (the tests'
            # nodes start from the images pulled once, player.nodeimages).
            node = RealNode(plane, base / f"node-{run}", seeded=False)
            started = time.perf_counter()
            node.start()
            samples.setdefault("node start → Node Ready", []).append(
                time.perf_counter() - started)
            try:
                for store in STORES:
                    namespace = f"{store}-{run}"
                    started = time.perf_counter()
                    applied(ROOT / "k8s" / store, namespace, base / namespace, node)
                    wait_until(functools.partial(pods_ready, plane, namespace, 3),
                               what=f"{store}'s three pods Ready", timeout=300)
                    samples.setdefault(f"k8s/{store}: apply -k → 3 pods Ready", []).append(
                        time.perf_counter() - started)
                for name, pids in processes(node).items():
                    memory.setdefault(name, []).append(sum(rss_mib(pid) for pid in pids))
                memory.setdefault("of which shims: count", []).append(
                    float(len(processes(node)["containerd's shims"])))
            finally:
                for store in STORES:
                    plane.kubectl("delete", "namespace", f"{store}-{run}", "--wait=false",
                                  check=False)
                node.stop()
    finally:
        plane.stop()
        shutil.rmtree(base, ignore_errors=True)
    print(f"Date: {datetime.date.today().isoformat()}; machine: {machine()}; {args.runs} "
          f"runs, each a new node on one real control plane; {os.cpu_count()} cores\n")
    print_table(samples, what="real node", digits=2)
    print()
    print_table(memory, what="resident memory with 9 pods running", digits=1, unit="MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
