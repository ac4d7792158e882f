"""Repair time: a pod gone without leaving to its member removed by the leader's sidecar,
next to rqlite's own reaper (-raft-reap-node-timeout) in the same run."""

from __future__ import annotations

import argparse
import datetime
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cold_start import machine, print_table
from player.agentnamespace import AgentNamespace
from player.controlplane import ControlPlane
from player.stores.base import Harness
from player.stores.consul import ConsulHarness
from player.stores.etcd import EtcdHarness
from player.stores.rqlite import RqliteCluster, RqliteHarness
from player.wait import wait_until

AFTER_SECONDS = 10.0
SIDECAR = {"AGENT_POLL_INTERVAL_SECONDS": "1", "AGENT_STALE_AFTER_SECONDS": "5",
           "AGENT_STORE_TIMEOUT_SECONDS": "2",
           "AGENT_REPAIR_AFTER_SECONDS": str(AFTER_SECONDS)}  # the interval: its default, 5 s


def leader_members(harness: Harness[Any]) -> list[str] | None:
    """Member names in the leader's own view, through a running sidecar."""
    for sidecar in harness.sidecars.values():
        if not sidecar.proc.running:
            continue
        try:
            authority = sidecar.status()["view"]["authority"]
        except Exception:  # a sidecar not answering yet: ask the next
            continue
        if authority is not None:
            return sorted(m["name"] for m in authority["members"])
    return None


def agent_repair(harness_class: type[Harness[Any]], workdir: Path,
                 control_plane: ControlPlane) -> float:
    """Seconds from pod 2's processes killed (after a scale to 2) to its member gone from
    the leader's view."""
    store = harness_class.store
    api = AgentNamespace(control_plane, workdir / "kube")
    api.add_statefulset(store, replicas=3)
    harness = harness_class(workdir, sidecar_env={**SIDECAR, **api.env()})
    try:
        harness.start(3)
        for sidecar in harness.sidecars.values():
            sidecar.wait_ready(timeout=60)
        api.scale(store, 2)
        harness.sidecars[2].proc.kill()
        harness.kill_store(2)
        killed = time.perf_counter()
        expected = [f"{store}-0", f"{store}-1"]
        wait_until(lambda: leader_members(harness) == expected, what=f"membership {expected}",
                   timeout=AFTER_SECONDS + 60, interval=0.05)
        return time.perf_counter() - killed
    finally:
        harness.close()
        api.delete()


def rqlite_reaper(workdir: Path) -> float:
    """Seconds from node 2 killed to its removal by rqlite's own reaper (every node
    started with -raft-reap-node-timeout, so whichever leads reaps)."""
    flags = [f"-raft-reap-node-timeout={AFTER_SECONDS:g}s"]
    cluster = RqliteCluster(workdir, extra_args={o: flags for o in range(3)})
    try:
        cluster.start(3)
        wait_until(lambda: all(cluster.status(o)["store"]["leader"]["node_id"]
                               for o in range(3)), what="all rqlite nodes see a leader",
                   timeout=30)
        proc = cluster.nodes[2].proc
        assert proc is not None
        proc.kill()
        killed = time.perf_counter()

        def reaped() -> bool:
            for ordinal in (0, 1):
                try:
                    ids = [n["id"] for n in cluster.status(ordinal)["store"]["nodes"]]
                except Exception:  # an election under way: ask the other node
                    continue
                return "rqlite-2" not in ids
            return False

        wait_until(reaped, what="rqlite reaping rqlite-2", timeout=AFTER_SECONDS + 60,
                   interval=0.05)
        return time.perf_counter() - killed
    finally:
        cluster.stop_all()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--stores", default="rqlite,etcd,consul",
                        help="comma-separated stores to measure")
    args = parser.parse_args()
    stores = set(args.stores.split(","))
    workdir = Path(tempfile.mkdtemp(prefix="sts-agent-bench-repair-"))
    samples: dict[str, list[float]] = {}
    harnesses = {"rqlite": RqliteHarness, "etcd": EtcdHarness, "consul": ConsulHarness}
    plane = ControlPlane(workdir / "control-plane", components=()).start()
    try:
        for run in range(args.runs):  # interleaved, so drift hits every case alike
            for store in sorted(stores):
                took = agent_repair(harnesses[store], workdir / f"{store}-{run}", plane)
                samples.setdefault(f"{store}: sts-agent repair, pod killed to member removed",
                                   []).append(took)
                if store == "rqlite":
                    samples.setdefault("rqlite: own -raft-reap-node-timeout, node killed to "
                                       "reaped", []).append(
                        rqlite_reaper(workdir / f"rqlite-reaper-{run}"))
    finally:
        plane.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"Date: {datetime.date.today().isoformat()}; machine: {machine()}; "
          f"{args.runs} runs each on a fresh 3-node loopback cluster; repair wait "
          f"{AFTER_SECONDS:g} s, pass interval 5 s; reaper timeout {AFTER_SECONDS:g} s\n")
    print_table(samples)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
