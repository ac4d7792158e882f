"""Joining node: pod start to ready voter through `sts-agent init` + sidecar, next to the
store's own join (rqlited -join; etcd member add + start) timed to its own health endpoint
and to caught up; with more data in the cluster each round (--data-mb)."""

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
CHUNK = 64 * 1024  # bytes a write when the cluster is filled to a size
MARK = "w/last"  # written after the fill: a node that holds it holds everything before


def caught_up(pods: InitPods, mark: str) -> bool:
    """The new node answers, from its own copy, the last write made before it joined."""
    try:
        return pods.harness.read_local(NEW, MARK) == mark
    except (httpx.HTTPError, ValueError, KeyError):
        return False  # not serving yet


def agent_join(pods: InitPods) -> tuple[float, float]:
    """(init seconds, pod start to /readyz 200 seconds) for pod NEW."""
    started = time.perf_counter()
    pods.init(NEW)
    init_done = time.perf_counter()
    pods.start_store(NEW)
    sidecar = pods.start_sidecar(NEW)
    wait_until(lambda: sidecar.readyz()[0] == 200, what="the joining pod's readiness",
               timeout=600, interval=0.01)
    ready = time.perf_counter()
    if pods.voters(0) != sorted(f"{pods.store}-{o}" for o in range(NEW + 1)):
        raise RuntimeError(f"ready but not a voter: {pods.authority(0)}")
    return init_done - started, ready - started


def native_join(pods: InitPods, http: httpx.Client, mark: str) -> tuple[float, float]:
    """The store's own join, timed from start to its own health endpoint saying healthy,
    and on to the new node holding the last write made before it (caught up)."""
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
    healthy = time.perf_counter()
    wait_until(lambda: caught_up(pods, mark), what="the new node holding the last write",
               timeout=600, interval=0.01)
    return healthy - started, time.perf_counter() - started


def fill(pods: InitPods, megabytes: int, written: int) -> int:
    """Write CHUNK-sized values through the leader until ``megabytes`` MiB are in the
    cluster (``written`` already), then the mark; the count of values now written."""
    target = megabytes * 1024 * 1024 // CHUNK
    if target > written:  # past the small entries' indexes, each value once
        pods.harness.write_entries(target - written, size=CHUNK, first=1_000_000 + written)
    if not pods.harness.put(MARK, f"{megabytes} MiB"):
        raise RuntimeError(f"{pods.store}: the mark after {megabytes} MiB was not taken")
    return max(target, written)


def size_on_disk(path: Path) -> float:
    """MiB under ``path``: what a joiner's copy of the data amounts to."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def reset(pods: InitPods) -> None:
    """Remove the joined pod and drop its volume, so every round is a fresh join."""
    pods.remove(NEW)
    pods.stop(NEW, wipe=True)
    wait_until(lambda: len(pods.members(0)) == NEW, what="the joined pod gone", timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--data-mb", default="0,10,100",
                        help="comma-separated MiB of data in the cluster, a round each "
                             "(0: the 2000 small entries alone)")
    parser.add_argument("--stores", default="rqlite,etcd")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work directory (the stores' and sidecars' logs)")
    args = parser.parse_args()
    sizes = [int(size) for size in args.data_mb.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="sts-agent-bench-join-"))
    samples: dict[str, list[float]] = {}
    try:
        with Dnsmasq(workdir / "dns") as dns, httpx.Client(timeout=2) as http:
            for store in args.stores.split(","):
                pods = InitPods(store, workdir / store, dns)
                try:
                    pods.start(0, 1, 2)
                    pods.wait_ready(0, 1, 2)
                    pods.harness.write_entries(2000)
                    written = 0
                    for size in sizes:
                        written = fill(pods, size, written)
                        mark = f"{size} MiB"
                        disk = size_on_disk(pods.data_dir(pods.harness.leader()))
                        print(f"{store}: {mark} written, the leader's data {disk:.0f} MiB "
                              "on disk", file=sys.stderr, flush=True)
                        label = f"{store}, {mark}"
                        for _ in range(args.runs):  # interleaved: drift hits both alike
                            init, total = agent_join(pods)
                            if not caught_up(pods, mark):
                                raise RuntimeError(f"{label}: ready without the last write")
                            samples.setdefault(f"{label}: sts-agent init run", []).append(init)
                            samples.setdefault(f"{label}: pod start to ready voter (sts-agent "
                                               "init + store + sidecar /readyz)",
                                               []).append(total)
                            reset(pods)
                            healthy, level = native_join(pods, http, mark)
                            samples.setdefault(f"{label}: store's own join to its own health "
                                               "endpoint", []).append(healthy)
                            samples.setdefault(f"{label}: store's own join to caught up (the "
                                               "last write in its own copy)", []).append(level)
                            reset(pods)
                finally:
                    pods.close()
    finally:
        if args.keep:
            print(f"work directory kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"Date: {datetime.date.today().isoformat()}; machine: {machine()}; "
          f"{args.runs} joins each into a running 3-node loopback cluster holding 2000 "
          f"entries and then {args.data_mb} MiB of {CHUNK // 1024} KiB values; sidecar poll "
          "interval 0.2 s\n")
    print_table(samples)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
