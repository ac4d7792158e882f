"""Leave latency: POST /leave to removal confirmed, next to the stores' own ways of leaving
(rqlite's remove-on-shutdown, Consul's `consul leave`)."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
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
from player.stores.consul import ConsulCluster, ConsulHarness
from player.stores.etcd import EtcdHarness
from player.stores.rqlite import RqliteCluster, RqliteHarness
from player.wait import wait_until

SIDECAR = {"AGENT_POLL_INTERVAL_SECONDS": "1", "AGENT_STALE_AFTER_SECONDS": "5",
           "AGENT_STORE_TIMEOUT_SECONDS": "2", "AGENT_TERMINATION_GRACE_PERIOD_SECONDS": "30"}


def agent_leave(harness_class: type[Harness[Any]], workdir: Path, settle_seconds: float,
                control_plane: ControlPlane) -> tuple[float, float]:
    """(server-side seconds from POST /leave to confirmed, `sts-agent leave` wall seconds),
    the decision read from the real API server."""
    api = AgentNamespace(control_plane, workdir / "kube")
    api.add_statefulset(harness_class.store, replicas=3)
    harness = harness_class(workdir, sidecar_env={**SIDECAR, **api.env()})
    try:
        harness.start(3)
        for sidecar in harness.sidecars.values():
            sidecar.wait_ready(timeout=60)
        settled = time.monotonic() + settle_seconds
        while time.monotonic() < settled:
            time.sleep(0.1)  # etcd refuses removals until members have been up 5 s
        api.scale(harness_class.store, 2)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENT_", "POD_"))}
        env["AGENT_LISTEN"] = f"{harness.ip(2)}:9090"
        started = time.perf_counter()
        result = subprocess.run([str(Path(sys.executable).with_name("sts-agent")), "leave"],
                                env=env, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
        outcome = json.loads(result.stdout)
        if outcome["result"] != "removed":
            raise RuntimeError(f"leave did not remove: {outcome}")
        return float(outcome["took_seconds"]), wall
    finally:
        harness.close()
        api.delete()


def rqlite_native(workdir: Path) -> float:
    """SIGTERM to exit of a node started with -raft-cluster-remove-shutdown."""
    cluster = RqliteCluster(workdir, extra_args={2: ["-raft-cluster-remove-shutdown"]})
    try:
        cluster.start(3)
        wait_until(lambda: all(cluster.status(o)["store"]["leader"]["node_id"]
                               for o in range(3)), what="all rqlite nodes see a leader",
                   timeout=30)
        proc = cluster.nodes[2].proc
        assert proc is not None and proc.process is not None
        started = time.perf_counter()
        proc.signal(15)
        proc.process.wait(timeout=60)
        took = time.perf_counter() - started
        ids = [n["id"] for n in cluster.status(0)["store"]["nodes"]]
        if "rqlite-2" in ids:
            raise RuntimeError(f"rqlite did not remove itself: {ids}")
        return took
    finally:
        cluster.stop_all()


def consul_native(workdir: Path) -> float:
    """`consul leave` on a server (PUT /v1/agent/leave) until it returns, the server out
    of the raft configuration."""
    cluster = ConsulCluster(workdir)
    try:
        cluster.start(3)
        wait_until(lambda: len([s for s in cluster.configuration() if s["Voter"]]) == 3,
                   what="three consul voters", timeout=60)
        started = time.perf_counter()
        cluster.leave(2)
        took = time.perf_counter() - started
        if "consul-2" in [s["Node"] for s in cluster.configuration()]:
            raise RuntimeError("consul-2 still in the raft configuration after leave")
        return took
    finally:
        cluster.stop_all()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--stores", default="rqlite,etcd,consul",
                        help="comma-separated stores to measure")
    args = parser.parse_args()
    stores = set(args.stores.split(","))
    workdir = Path(tempfile.mkdtemp(prefix="sts-agent-bench-leave-"))
    samples: dict[str, list[float]] = {}
    plane = ControlPlane(workdir / "control-plane", components=()).start()
    try:
        for run in range(args.runs):  # interleaved, so drift hits every case alike
            if "rqlite" in stores:
                server, wall = agent_leave(RqliteHarness, workdir / f"rq-agent-{run}", 0,
                                           plane)
                samples.setdefault("rqlite: sts-agent, POST /leave to removal confirmed",
                                   []).append(server)
                samples.setdefault("rqlite: `sts-agent leave` command, wall", []).append(wall)
                samples.setdefault("rqlite: own -raft-cluster-remove-shutdown, SIGTERM to exit",
                                   []).append(rqlite_native(workdir / f"rq-native-{run}"))
            if "etcd" in stores:
                server, wall = agent_leave(EtcdHarness, workdir / f"etcd-agent-{run}", 5.5,
                                           plane)
                samples.setdefault("etcd: sts-agent, POST /leave to removal confirmed",
                                   []).append(server)
                samples.setdefault("etcd: `sts-agent leave` command, wall", []).append(wall)
            if "consul" in stores:
                server, wall = agent_leave(ConsulHarness, workdir / f"consul-agent-{run}", 0,
                                           plane)
                samples.setdefault("consul: sts-agent, POST /leave to removal confirmed",
                                   []).append(server)
                samples.setdefault("consul: `sts-agent leave` command, wall", []).append(wall)
                samples.setdefault("consul: own `consul leave` (PUT /v1/agent/leave), wall",
                                   []).append(consul_native(workdir / f"consul-native-{run}"))
    finally:
        plane.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"Date: {datetime.date.today().isoformat()}; machine: {machine()}; "
          f"{args.runs} runs each on a fresh 3-node loopback cluster\n")
    print_table(samples)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
