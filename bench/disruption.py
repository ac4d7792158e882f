"""Disruption: what planned operations (scale 3→5, a rolling restart, a follower's or the
leader's pod deleted, scale 5→3) do to a client's writes, with sts-agent and, in the same
run, with each store's own way on Kubernetes without it (bench/native/)."""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cold_start import machine
from bench.openloop import OpenLoopWriter, window
from bench.raftwatch import RaftWatch
from player.controlplane import ControlPlane
from player.statefulset import StatefulSetPlayer
from player.stores import harness_class

ROOT = Path(__file__).resolve().parents[1]
NATIVE = Path(__file__).resolve().parent / "native"
VARIANTS = {"agent": "sts-agent", "own": "the store's own way"}
OPERATIONS = ("scale 3→5", "rolling restart", "delete a follower's pod",
              "delete the leader's pod", "scale 5→3")
# Writes due this long after an operation's pods are all Ready again still count for it:
# an election right after the last pod came back is the operation's too.
TAIL_SECONDS = 2.0
GAP_TARGET_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class Row:
    """One operation on one store, one way."""

    store: str
    variant: str
    operation: str
    ready_seconds: float  # from the operation's start to every pod Ready again
    writes: int
    failed: int
    longest_gap: float
    p50_ms: float
    p99_ms: float
    leader_changes: int
    term_increments: int
    leaderless: float  # the longest stretch no pod said it led, polled every 0.1 s
    error: str = ""  # why the operation did not finish (its pods never all Ready)

    @property
    def met(self) -> bool:
        """The targets for a planned operation: no election waited out (a leader that goes
        hands off first, so no stretch without a leader of 0.5 s or more) and no gap
        between acknowledged writes of 0.5 s or more."""
        return (not self.error and self.longest_gap < GAP_TARGET_SECONDS
                and self.leaderless < GAP_TARGET_SECONDS)


def operations(player: StatefulSetPlayer, leader: Callable[[], int]) -> dict[
        str, Callable[[], None]]:
    def delete_and_wait(ordinal: int) -> None:
        player.delete_pod(ordinal)
        player.wait_ready(ordinal)

    def follower() -> int:
        return next(o for o in (1, 2, 0) if o != leader())

    return {
        "scale 3→5": lambda: player.scale(5, timeout=300),
        "rolling restart": lambda: player.rolling_restart(timeout=600),
        "delete a follower's pod": lambda: delete_and_wait(follower()),
        "delete the leader's pod": lambda: delete_and_wait(leader()),
        "scale 5→3": lambda: player.scale(3, timeout=300),
    }


def measure(store: str, variant: str, workdir: Path, plane: ControlPlane, *,
            rate: float) -> list[Row]:
    """Start the example three pods strong, write at ``rate`` throughout, and run every
    operation in turn; a row each."""
    patches = (yaml.safe_load((NATIVE / f"{store}.yaml").read_text())
               if variant == "own" else None)
    player = StatefulSetPlayer(ROOT / "k8s" / store, workdir, control_plane=plane,
                               namespace=f"{store}-{variant}", json_patches=patches)
    kv_class = harness_class(store).kv_class
    auth = kv_class.credentials(player.example.secrets)

    def ready_urls() -> list[str]:
        return [kv_class.client_url(p.ip, store) for p in list(player.pods.values())
                if p.ready and not p.terminating]

    def pod_urls() -> dict[str, str]:
        return {p.name: kv_class.client_url(p.ip, store) for p in list(player.pods.values())}

    def leader() -> int:
        name = watch.leader()
        if name is None:
            raise RuntimeError(f"{store} ({variant}): no leader seen")
        return int(name.rsplit("-", 1)[1])

    watch = RaftWatch(store, pod_urls, auth=auth)
    writer = OpenLoopWriter(kv_class, ready_urls, rate=rate, auth=auth)
    rows: list[Row] = []
    with player:
        try:
            player.start(3)
            kv_class.setup(player)
            watch.start()
            writer.start()
            time.sleep(3)  # a steady state before the first operation: the baseline writes
            for name, operation in operations(player, leader).items():
                started = time.monotonic()
                error = ""
                try:
                    operation()
                except (AssertionError, RuntimeError, StopIteration) as exc:
                    # Measured as far as it went; the operations after it are not run.
                    error = str(exc).splitlines()[0]
                    print(player.describe(), file=sys.stderr)
                ready = time.monotonic()
                end = ready + TAIL_SECONDS
                while time.monotonic() < end:
                    time.sleep(0.1)  # the tail's writes are due until then
                seen = window(writer.snapshot(), started, end)
                elections = watch.elections(started, end)
                rows.append(Row(store, variant, name, round(ready - started, 2), seen.writes,
                                seen.failed, round(seen.longest_gap, 3),
                                round(seen.p50 * 1000, 1), round(seen.p99 * 1000, 1),
                                elections.leader_changes, elections.term_increments,
                                round(elections.leaderless, 2), error))
                print(f"  {store} ({VARIANTS[variant]}) {name}: {asdict(rows[-1])}", flush=True)
                if error:
                    break
        finally:
            writer.stop()
            watch.stop()
    return rows


def print_rows(rows: list[Row]) -> None:
    print("| store | operation | way | longest gap s | failed / writes | p50 ms | p99 ms "
          "| leader changes | term increments | leaderless s | Ready again s | targets |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for row in sorted(rows, key=lambda r: (r.store, OPERATIONS.index(r.operation),
                                           r.variant)):
        verdict = ("met" if row.met else "not met") if row.variant == "agent" else ""
        ready = (f"not after {row.ready_seconds:.0f}: {row.error}" if row.error
                 else f"{row.ready_seconds:.1f}")
        print(f"| {row.store} | {row.operation} | {VARIANTS[row.variant]} "
              f"| {row.longest_gap:.2f} | {row.failed} / {row.writes} | {row.p50_ms:.1f} "
              f"| {row.p99_ms:.1f} | {row.leader_changes} | {row.term_increments} "
              f"| {row.leaderless:.1f} | {ready} | {verdict} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stores", default="rqlite,etcd,consul",
                        help="comma-separated stores to measure")
    parser.add_argument("--variants", default="agent,own",
                        help="agent (sts-agent), own (the store's own way), or both")
    parser.add_argument("--rate", type=float, default=100.0, help="writes a second")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="sts-agent-bench-disruption-"))
    rows: list[Row] = []
    plane = ControlPlane(workdir / "control-plane").start()
    try:
        for store in args.stores.split(","):
            for variant in args.variants.split(","):
                rows += measure(store, variant, workdir / f"{store}-{variant}", plane,
                                rate=args.rate)
    finally:
        plane.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nDate: {datetime.date.today().isoformat()}; machine: {machine()}; "
          f"{args.rate:g} writes/s, one run of each operation in turn on one cluster\n")
    print_rows(rows)
    if args.json:
        payload: list[dict[str, Any]] = [asdict(row) for row in rows]
        args.json.write_text(json.dumps(payload, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
