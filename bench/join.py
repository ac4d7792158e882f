"""Joining node: pod start to ready voter through `sts-agent init` + sidecar, next to the
store's own join (rqlited -join; etcd member add + start) timed to its own health endpoint."""

from __future__ import annotations

import argparse
import datetime
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from bench.cold_start import machine, print_table
from player.dns import Dnsmasq
from player.pods import InitPods
from player.stores.etcd import EtcdCluster
from player.wait import wait_until

NEW = 3  # the joining pod's ordinal


def agent_join(pods: InitPods) -> tuple[float, float]:
    """(init seconds, pod start to /readyz 200 seconds) for pod NEW."""
    started = time.perf_counter()
    pods.init(NEW)
    init_done = time.perf_counter()
    pods.start_store(NEW)
    sidecar = pods.start_sidecar(NEW)
    wait_until(lambda: sidecar.readyz()[0] == 200, what="the joining pod's readiness",
               timeout=120, interval=0.01)
    ready = time.perf_counter()
    if pods.voters(0) != sorted(f"{pods.store}-{o}" for o in range(NEW + 1)):
        raise RuntimeError(f"ready but not a voter: {pods.authority(0)}")
    return init_done - started, ready - started


def native_join(pods: InitPods, http: httpx.Client) -> float:
    """The store's own join, timed from start to its own health endpoint saying healthy."""
    started = time.perf_counter()
    cluster = pods.cluster
    if isinstance(cluster, EtcdCluster):
        cluster.add(NEW)  # member add as a voter, then start with state=existing
        url = cluster.client_url(NEW) + "/health"
        wait_until(lambda: http.get(url).json().get("health") == "true",
                   what="etcd's /health on the new member", timeout=120, interval=0.01)
    else:
        cluster.add(NEW)  # rqlited -join the running nodes
        url = cluster.api_url(NEW) + "/readyz"
        wait_until(lambda: http.get(url).status_code == 200,
                   what="rqlite's /readyz on the new node", timeout=120, interval=0.01)
    return time.perf_counter() - started


def reset(pods: InitPods) -> None:
    """Remove the joined pod and drop its volume, so every round is a fresh join."""
    pods.remove(NEW)
    pods.stop(NEW, wipe=True)
    wait_until(lambda: len(pods.members(0)) == NEW, what="the joined pod gone", timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="sts-agent-bench-join-"))
    samples: dict[str, list[float]] = {}
    try:
        with Dnsmasq(workdir / "dns") as dns, httpx.Client(timeout=2) as http:
            for store in ("rqlite", "etcd"):
                pods = InitPods(store, workdir / store, dns)
                try:
                    pods.start(0, 1, 2)
                    pods.wait_ready(0, 1, 2)
                    pods.harness.write_entries(2000)
                    for _ in range(args.runs):  # interleaved: drift hits both alike
                        init, total = agent_join(pods)
                        samples.setdefault(f"{store}: sts-agent init run", []).append(init)
                        samples.setdefault(f"{store}: pod start to ready voter (sts-agent "
                                           "init + store + sidecar /readyz)", []).append(total)
                        reset(pods)
                        samples.setdefault(f"{store}: store's own join to its own health "
                                           "endpoint", []).append(native_join(pods, http))
                        reset(pods)
                finally:
                    pods.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"Date: {datetime.date.today().isoformat()}; machine: {machine()}; "
          f"{args.runs} joins each into a running 3-node loopback cluster holding 2000 "
          "entries; sidecar poll interval 0.2 s\n")
    print_table(samples)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
