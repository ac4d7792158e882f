"""Consul full restart: every pod of k8s/consul gone at once (deleted, or a power cut) to
a leader as Consul itself reports it (/v1/status/leader on every new pod) and to every
pod Ready (the agent's /readyz: a member, a leader, caught up), in one run."""

from __future__ import annotations

import argparse
import datetime
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cold_start import machine, print_table
from player.controlplane import ControlPlane
from player.statefulset import StatefulSetPlayer

ROOT = Path(__file__).resolve().parents[1]


def consul_leader(player: StatefulSetPlayer, old: set[str]) -> bool:
    """Every pod is a new one and its Consul names the same leader."""
    pods = list(player.pods.values())
    if len(pods) != 3 or any(p.uid in old for p in pods):
        return False
    leaders = set()
    for pod in pods:
        try:
            leaders.add(httpx.get(f"http://{pod.ip}:8500/v1/status/leader", timeout=1).json())
        except (httpx.HTTPError, ValueError):
            return False
    return len(leaders) == 1 and "" not in leaders


def one(workdir: Path, plane: ControlPlane, namespace: str, how: str) -> tuple[float, float]:
    """(seconds to Consul's leader on every new pod, seconds to every pod Ready)."""
    player = StatefulSetPlayer(ROOT / "k8s" / "consul", workdir, control_plane=plane,
                               namespace=namespace)
    try:
        player.start(3)
        old = {p.uid for p in player.pods.values()}
        started = time.perf_counter()
        names = [p.name for p in player.pods.values()]
        if how == "deleted":
            player.kubectl("delete", "pod", *names, "--wait=false")
        else:
            player.outage()
        leader = None
        deadline = started + 300
        while leader is None and time.perf_counter() < deadline:
            if consul_leader(player, old):
                leader = time.perf_counter() - started
            else:
                time.sleep(0.05)
        if leader is None:
            raise RuntimeError("no Consul leader within 300 s")

        def ready() -> bool:
            pods = player.api_pods()
            return len(pods) == 3 and all(p["metadata"]["uid"] not in old
                                          and player.api_ready(p) for p in pods.values())

        while not ready():
            if time.perf_counter() > deadline:
                raise RuntimeError("pods not Ready within 300 s")
            time.sleep(0.05)
        return leader, time.perf_counter() - started
    finally:
        player.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="sts-agent-bench-consul-restart-"))
    samples: dict[str, list[float]] = {}
    plane = ControlPlane(base / "control-plane").start()
    try:
        for run in range(args.runs):
            for how in ("deleted", "power cut"):
                leader, ready = one(base / f"{how[0]}-{run}", plane,
                                    f"consul-{how[0]}-{run}", how)
                samples.setdefault(f"{how}: Consul's own /v1/status/leader on every new pod",
                                   []).append(leader)
                samples.setdefault(f"{how}: every pod Ready (the agent's /readyz)",
                                   []).append(ready)
    finally:
        plane.stop()
        shutil.rmtree(base, ignore_errors=True)
    print(f"Date: {datetime.date.today().isoformat()}; machine: {machine()}; "
          f"{args.runs} runs each on one real control plane (k8s/consul as shipped, 3 pods; "
          "from the delete to the condition)\n")
    print_table(samples)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
