"""How the agent's cost grows: the API server's load and the sidecar's own. The requests
the agent's pods make (their service account, read from the API server's own audit log)
per pod per hour in a steady state and during each planned operation, on the real node,
with what 10,000 pods would ask of one API server; and each sidecar's CPU per poll and
resident memory in a steady state at 3 and at 7 members."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cold_start import machine
from bench.disruption import operations
from bench.readyz import rss_mib
from player.controlplane import ControlPlane
from player.realpods import RealPod
from player.statefulset import StatefulSetPlayer

ROOT = Path(__file__).resolve().parents[1]
STORES = ("etcd", "rqlite", "consul", "galera")
POD_NAME = "authentication.kubernetes.io/pod-name"  # a bound token's pod, in user.extra
PODS_ON_PAPER = 10_000
ROLLED = 5  # the rolling restart runs with five pods (after scale 3→5)
SIDECAR = "agent"  # the example's sidecar container
SIDECAR_PORT = 9090
POLLS = re.compile(r"^sts_agent_poll_seconds_count (\S+)$", re.MULTILINE)
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Load:
    """The agent's requests in one window of one store's run."""

    store: str
    phase: str
    seconds: float
    pods: int  # the pods that made a request in the window
    requests: int
    top: tuple[tuple[str, int], ...]  # (verb resource, count), the most frequent first

    @property
    def per_pod_hour(self) -> float:
        return self.requests / max(self.pods, 1) / self.seconds * 3600 if self.seconds else 0.0


@dataclass(frozen=True, slots=True)
class Cost:
    """One sidecar's own cost over a steady window."""

    store: str
    members: int
    pod: str
    seconds: float  # the window
    polls: int
    cpu_seconds: float  # user + system, every process of the container
    rss_mib: float  # at the window's end

    @property
    def cpu_ms_per_poll(self) -> float:
        return self.cpu_seconds * 1000 / self.polls if self.polls else 0.0


def cpu_seconds(pids: list[int]) -> float:
    """User and system time of ``pids`` so far (/proc/<pid>/stat, fields 14 and 15)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / TICKS


def polls(http: httpx.Client, pod: RealPod) -> int:
    """How many polls the sidecar has made (its own histogram's count)."""
    found = POLLS.search(http.get(f"http://{pod.ip}:{SIDECAR_PORT}/metrics").text)
    if found is None:
        raise RuntimeError(f"{pod.name}: no sts_agent_poll_seconds_count in /metrics")
    return int(float(found.group(1)))


def sidecar_costs(store: str, player: StatefulSetPlayer, steady: float) -> list[Cost]:
    """Every pod's sidecar over ``steady`` seconds with nothing happening."""
    pods = [pod for pod in player.pods.values() if not pod.terminating]
    with httpx.Client(timeout=5) as http:
        before = {pod.name: (polls(http, pod), cpu_seconds(pod.container_pids(SIDECAR)))
                  for pod in pods}
        time.sleep(steady)  # the window measured: nothing happens in it on purpose
        costs = []
        for pod in pods:
            pids = pod.container_pids(SIDECAR)
            count, cpu = before[pod.name]
            costs.append(Cost(store, len(pods), pod.name, steady, polls(http, pod) - count,
                              round(cpu_seconds(pids) - cpu, 2),
                              round(sum(rss_mib(pid) for pid in pids), 1)))
    return costs


def timestamp(event: dict[str, Any]) -> float:
    return datetime.datetime.fromisoformat(event["stageTimestamp"]).timestamp()


def load(store: str, phase: str, events: list[dict[str, Any]], user: str,
         started: float, ended: float) -> Load:
    """What ``user`` asked between ``started`` and ``ended`` (epoch seconds)."""
    mine = [e for e in events if e.get("user", {}).get("username") == user
            and started <= timestamp(e) < ended]
    pods = {(e["user"].get("extra", {}).get(POD_NAME) or ["?"])[0] for e in mine}
    kinds = Counter(f"{e['verb']} {e.get('objectRef', {}).get('resource', e['requestURI'])}"
                    for e in mine)
    return Load(store, phase, round(ended - started, 1), len(pods), len(mine),
                tuple(kinds.most_common(3)))


def measure(store: str, workdir: Path, plane: ControlPlane, *, steady: float,
            costs: list[Cost], large: int) -> list[Load]:
    """The example three pods strong: ``steady`` seconds left alone, then each planned
    operation in turn, then ``large`` pods left alone as long; the agent's requests in
    each window, and its sidecars' cost (into ``costs``) in the steady ones."""
    player = StatefulSetPlayer(ROOT / "k8s" / store, workdir, control_plane=plane,
                               namespace=f"{store}-load")
    user = f"system:serviceaccount:{player.namespace}:sts-agent"
    windows: list[tuple[str, float, float]] = []
    with player:
        player.start(3)
        started = time.time()
        costs += sidecar_costs(store, player, steady)
        windows.append(("steady state, 3 pods", started, time.time()))
        for name, operation in operations(player, None).items():
            started = time.time()
            operation()
            windows.append((name, started, time.time()))
            print(f"  {store}: {name} in {windows[-1][2] - started:.1f} s", flush=True)
        player.scale(large, timeout=600)  # returns with every pod Ready
        started = time.time()
        costs += sidecar_costs(store, player, steady)
        windows.append((f"steady state, {large} pods", started, time.time()))
    events = plane.audit_events()
    return [load(store, phase, events, user, start, end) for phase, start, end in windows]


def print_loads(loads: list[Load]) -> None:
    """A row per window; a rate per pod per hour for the steady windows (an operation's
    requests are counted whole: the window is the operation), then the paper figures."""
    print("| store | window | s | pods asking | requests | per pod asking "
          "| per pod per hour | the most frequent |")
    print("|---|---|---|---|---|---|---|---|")
    for row in loads:
        top = ", ".join(f"{kind} {count}" for kind, count in row.top) or "—"
        steady = row.phase.startswith("steady")
        print(f"| {row.store} | {row.phase} | {row.seconds:.0f} | {row.pods} | {row.requests} "
              f"| {row.requests / max(row.pods, 1):.1f} "
              f"| {f'{row.per_pod_hour:.0f}' if steady else '—'} | {top} |")
    print()
    for row in loads:
        if row.phase.startswith("steady"):
            per_second = row.per_pod_hour * PODS_ON_PAPER / 3600
            print(f"- {row.store}: {PODS_ON_PAPER:,} pods left alone would ask one API server "
                  f"{per_second:.1f} requests/s")
        elif row.phase == "rolling restart":
            per_pod = row.requests / ROLLED
            print(f"- {row.store}: a rolling restart asks {per_pod:.1f} requests per pod "
                  f"restarted; {PODS_ON_PAPER:,} pods rolled, "
                  f"{per_pod * PODS_ON_PAPER:,.0f} requests over the rollout")


def print_costs(costs: list[Cost]) -> None:
    """A row per store and cluster size: the median and the largest over its sidecars."""
    print("| store | members | sidecars | polls each | CPU ms per poll, median / max "
          "| CPU % of a core, max | resident MiB, median / max |")
    print("|---|---|---|---|---|---|---|")
    groups: dict[tuple[str, int], list[Cost]] = {}
    for cost in costs:
        groups.setdefault((cost.store, cost.members), []).append(cost)
    for (store, members), rows in groups.items():
        per_poll = [r.cpu_ms_per_poll for r in rows]
        rss = [r.rss_mib for r in rows]
        share = max(r.cpu_seconds / r.seconds for r in rows) * 100
        print(f"| {store} | {members} | {len(rows)} | {min(r.polls for r in rows)} "
              f"| {statistics.median(per_poll):.1f} / {max(per_poll):.1f} | {share:.2f} "
              f"| {statistics.median(rss):.1f} / {max(rss):.1f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", default=",".join(STORES))
    parser.add_argument("--steady-seconds", type=float, default=300.0)
    parser.add_argument("--large", type=int, default=7,
                        help="the second steady state's members")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="sts-agent-bench-scale-"))
    loads: list[Load] = []
    costs: list[Cost] = []
    try:
        with ControlPlane(base / "control-plane", audit=True) as plane:
            for store in args.stores.split(","):
                loads += measure(store, base / store, plane, steady=args.steady_seconds,
                                 costs=costs, large=args.large)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"\nDate: {datetime.date.today()}; machine: {machine()}; the real node, "
          f"the example 3 pods strong; steady window {args.steady_seconds:.0f} s\n")
    print_loads(loads)
    print("\nThe sidecars' own cost in the steady windows (poll interval 1 s)\n")
    print_costs(costs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
