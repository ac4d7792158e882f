"""The sidecar's memory in its own image and container, next to its store's."""

from __future__ import annotations

import argparse
import datetime
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cold_start import machine
from player.dns import Dnsmasq, statefulset_records
from player.netns import Network
from player.podrun import DOMAIN, NAMESPACE, Pod
from player.runtime import Containerd, archive
from player.wait import wait_until

# Each example's store container, and the probe that says its sidecar is serving.
STORES = {"etcd": "etcd", "rqlite": "rqlite", "consul": "consul"}
# The examples' settings, but one member: it bootstraps alone (rqlite's flags still say 3).
PRODUCTION_LIKE = {"AGENT_POLL_INTERVAL_SECONDS": "1", "AGENT_BOOTSTRAP_EXPECT": "1"}


def rss_kib(containerd: Containerd, name: str) -> int:
    """The container's resident memory: VmRSS of every process of its task, in KiB."""
    total = 0
    for line in containerd.ctr("tasks", "ps", name).stdout.splitlines()[1:]:
        pid = line.split()[0]
        status = Path(f"/proc/{pid}/status").read_text()
        rss = next(row for row in status.splitlines() if row.startswith("VmRSS:"))
        total += int(rss.split()[1])
    return total


def measure(containerd: Containerd, net: Network, dns: Dnsmasq, work: Path, example: str,
            seconds: float) -> tuple[float, float, float]:
    """(sidecar median MiB, sidecar max MiB, store median MiB) over ``seconds`` once the
    sidecar of a lone ``example`` pod serves."""
    netns, address = net.add_pod(example, search=[], hostname=f"{example}-0")
    try:
        pod = Pod(example, work / example, netns, address, net.gateway)
        dns.set_records(statefulset_records(
            statefulset=pod.statefulset["metadata"]["name"], service=pod.service,
            namespace=NAMESPACE, domain=DOMAIN, pods={0: address}))
        code, output = containerd.run(pod.container("init", env=PRODUCTION_LIKE))
        if code != 0:
            raise SystemExit(f"{example}: init exited {code}:\n{output[-2000:]}")
        store = pod.container(STORES[example])
        sidecar = pod.container("agent", env=PRODUCTION_LIKE)
        running = [(store, containerd.start(store, work / f"{example}-store.log")),
                   (sidecar, containerd.start(sidecar, work / f"{example}-agent.log"))]
        try:
            # Serving and polling its store: rqlite alone waits for the two peers its
            # example's flags expect, so its /readyz stays 503.
            wait_until(lambda: httpx.get(f"http://{address}:9090/livez", timeout=2.0)
                       .status_code == 200, what=f"{example} sidecar live", timeout=120.0)
            time.sleep(seconds / 3)  # a few polls before the first sample
            agent: list[int] = []
            own: list[int] = []
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                agent.append(rss_kib(containerd, sidecar.name))
                own.append(rss_kib(containerd, store.name))
                time.sleep(1.0)  # one sample a second: the sidecar's own poll interval
            return (statistics.median(agent) / 1024, max(agent) / 1024,
                    statistics.median(own) / 1024)
        finally:
            for container, process in reversed(running):
                containerd.stop(container, process)
    finally:
        net.remove_pod(netns)


def image_size(name: str) -> str:
    """The archive's size (compressed layers), MB."""
    return f"{archive(name).stat().st_size / 1e6:.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stores", default="etcd,rqlite,consul")
    parser.add_argument("--seconds", type=float, default=30.0)
    options = parser.parse_args()
    subprocess.run([sys.executable, str(Path(__file__).resolve().parents[1] / "scripts"
                                        / "build_images.py")], check=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="sts-agent-bench-") as tmp:
        work = Path(tmp)
        net = Network().up()
        dns = Dnsmasq(work / "dns", listen=net.gateway, port=53, domains=(DOMAIN,))
        try:
            dns.start()
            with Containerd(work / "containerd") as containerd:
                for example in options.stores.split(","):
                    rows.append((example, *measure(containerd, net, dns, work, example,
                                                   options.seconds)))
        finally:
            dns.close()
            net.down()
    print(f"Date: {datetime.date.today()}; machine: {machine()}")
    print(f"\nSidecar in its image (sts-agent:0.1.0, {image_size('sts-agent:0.1.0')} MB "
          f"compressed; its base {image_size('gcr.io/distroless/python3-debian12:nonroot')} "
          f"MB), VmRSS over {options.seconds:.0f} s, one lone pod at a time:\n")
    print("| example | sidecar median MiB | sidecar max MiB | store median MiB |")
    print("|---|---|---|---|")
    for example, median, worst, store in rows:
        print(f"| {example} | {median:.1f} | {worst:.1f} | {store:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
