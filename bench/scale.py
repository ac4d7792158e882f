"""How the agent's cost grows: the API server's load. The requests the agent's pods make
(their service account, read from the API server's own audit log) per pod per hour in a
steady state and during each planned operation, on the real node, with what 10,000 pods
would ask of one API server."""

from __future__ import annotations

import argparse
import datetime
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cold_start import machine
from bench.disruption import operations
from player.controlplane import ControlPlane
from player.statefulset import StatefulSetPlayer

ROOT = Path(__file__).resolve().parents[1]
STORES = ("etcd", "rqlite", "consul", "galera")
POD_NAME = "authentication.kubernetes.io/pod-name"  # a bound token's pod, in user.extra
PODS_ON_PAPER = 10_000
ROLLED = 5  # the rolling restart runs with five pods (after scale 3→5)


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


def measure(store: str, workdir: Path, plane: ControlPlane, *, steady: float) -> list[Load]:
    """The example three pods strong: ``steady`` seconds left alone, then each planned
    operation in turn; the agent's requests in each window."""
    player = StatefulSetPlayer(ROOT / "k8s" / store, workdir, control_plane=plane,
                               namespace=f"{store}-load")
    user = f"system:serviceaccount:{player.namespace}:sts-agent"
    windows: list[tuple[str, float, float]] = []
    with player:
        player.start(3)
        started = time.time()
        time.sleep(steady)  # the window measured: nothing happens in it on purpose
        windows.append(("steady state, 3 pods", started, time.time()))
        for name, operation in operations(player, None).items():
            started = time.time()
            operation()
            windows.append((name, started, time.time()))
            print(f"  {store}: {name} in {windows[-1][2] - started:.1f} s", flush=True)
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", default=",".join(STORES))
    parser.add_argument("--steady-seconds", type=float, default=300.0)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="sts-agent-bench-scale-"))
    loads: list[Load] = []
    try:
        with ControlPlane(base / "control-plane", audit=True) as plane:
            for store in args.stores.split(","):
                loads += measure(store, base / store, plane, steady=args.steady_seconds)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"\nDate: {datetime.date.today()}; machine: {machine()}; the real node, "
          f"the example 3 pods strong; steady window {args.steady_seconds:.0f} s\n")
    print_loads(loads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
