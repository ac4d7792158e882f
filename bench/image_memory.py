"""The sidecar's memory in its own image and container, next to its store's: each example
applied as shipped (three pods) to a real node, pod 0's containers sampled once it is
Ready."""

from __future__ import annotations

import argparse
import datetime
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cold_start import machine
from player.controlplane import ControlPlane
from player.realpods import RealPod
from player.runtime import archive
from player.statefulset import StatefulSetPlayer

ROOT = Path(__file__).resolve().parents[1]
# Each example's store container.
STORES = {"etcd": "etcd", "rqlite": "rqlite", "consul": "consul"}
SAMPLE_SECONDS = 1.0  # one sample a second: the examples' poll interval


def rss_kib(pod: RealPod, container: str) -> int:
    """The container's resident memory: VmRSS of every process in its cgroup, in KiB."""
    total = 0
    pids = pod.container_pids(container)
    if not pids:
        raise SystemExit(f"{pod.name}: no process of {container} (has it restarted?)")
    for pid in pids:
        status = Path(f"/proc/{pid}/status").read_text()
        rss = next(row for row in status.splitlines() if row.startswith("VmRSS:"))
        total += int(rss.split()[1])
    return total


def measure(plane: ControlPlane, work: Path, example: str,
            seconds: float) -> tuple[float, float, float]:
    """(sidecar median MiB, sidecar max MiB, store median MiB) of pod 0 over ``seconds``
    once all three pods of ``example`` are Ready."""
    player = StatefulSetPlayer(ROOT / "k8s" / example, work / example, control_plane=plane,
                               namespace=f"memory-{example}")
    try:
        player.start(3)
        time.sleep(seconds / 3)  # a few polls before the first sample
        pod = player.pods[0]
        agent: list[int] = []
        own: list[int] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            agent.append(rss_kib(pod, "agent"))
            own.append(rss_kib(pod, STORES[example]))
            time.sleep(SAMPLE_SECONDS)
        return (statistics.median(agent) / 1024, max(agent) / 1024,
                statistics.median(own) / 1024)
    finally:
        player.close()


def image_size(name: str) -> str:
    """The archive's size (compressed layers), MB."""
    return f"{archive(name).stat().st_size / 1e6:.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stores", default="etcd,rqlite,consul")
    parser.add_argument("--seconds", type=float, default=30.0)
    options = parser.parse_args()
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build_images.py")], check=True)
    rows = []
    work = Path(tempfile.mkdtemp(prefix="sts-agent-bench-memory-"))
    plane = ControlPlane(work / "control-plane").start()
    try:
        for example in options.stores.split(","):
            rows.append((example, *measure(plane, work, example, options.seconds)))
    finally:
        plane.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"Date: {datetime.date.today()}; machine: {machine()}")
    print(f"\nSidecar in its image (sts-agent:0.1.0, {image_size('sts-agent:0.1.0')} MB "
          f"compressed; its base {image_size('gcr.io/distroless/python3-debian12:nonroot')} "
          f"MB), VmRSS of pod 0's containers over {options.seconds:.0f} s, three pods on a "
          "real node:\n")
    print("| example | sidecar median MiB | sidecar max MiB | store median MiB |")
    print("|---|---|---|---|")
    for example, median, worst, store in rows:
        print(f"| {example} | {median:.1f} | {worst:.1f} | {store:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
