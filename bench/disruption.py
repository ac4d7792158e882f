"""Disruption: what planned operations (scale 3→5, a rolling restart, a follower's or the
leader's pod deleted, scale 5→3; Galera, which has no leader: a pod deleted) do to a
client's writes, with sts-agent and, in the same run, with each store's own way on
Kubernetes without it (bench/native/); ``--members 7``: the same from 7 (7→9, 9→7)."""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import statistics
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
from bench.raftwatch import STATES, Elections, RaftWatch
from player import manifests
from player.controlplane import ControlPlane
from player.statefulset import StatefulSetPlayer
from player.stores import harness_class

ROOT = Path(__file__).resolve().parents[1]
NATIVE = Path(__file__).resolve().parent / "native"
VARIANTS = {"agent": "sts-agent", "own": "the store's own way"}
# Galera's client opens a connection per write: at 100 a second the writer queued on two
# cores (each write's latency then counted the queue), so it writes at its own rate.
GALERA_RATE = 20.0
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
    run: int  # which pass of the operations, from 1
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
    why_failed: str = ""  # failed writes by pod and answer: "3 rqlite-2: refused; …"
    gap_began: str = ""  # when the longest gap began, UTC: where to read the logs

    @property
    def met(self) -> bool:
        """The targets for a planned operation: no election waited out (a leader that goes
        hands off first, so no stretch without a leader of 0.5 s or more) and no gap
        between acknowledged writes of 0.5 s or more."""
        return (not self.error and self.longest_gap < GAP_TARGET_SECONDS
                and self.leaderless < GAP_TARGET_SECONDS)


def operations(player: StatefulSetPlayer, leader: Callable[[], int] | None,
               members: int = 3) -> dict[str, Callable[[], None]]:
    """The operations in turn on a cluster of ``members``; without a leader (Galera) one
    pod deleted instead of a follower's and the leader's."""
    def delete_and_wait(ordinal: int) -> None:
        player.delete_pod(ordinal)
        player.wait_ready(ordinal)

    def follower(leader: Callable[[], int]) -> int:
        return next(o for o in (1, 2, 0) if o != leader())

    deletions: dict[str, Callable[[], None]] = {"delete a pod": lambda: delete_and_wait(1)}
    if leader is not None:
        found = leader
        deletions = {"delete a follower's pod": lambda: delete_and_wait(follower(found)),
                     "delete the leader's pod": lambda: delete_and_wait(found())}
    return {
        f"scale {members}→{members + 2}": lambda: player.scale(members + 2, timeout=300),
        "rolling restart": lambda: player.rolling_restart(timeout=600),
        **deletions,
        f"scale {members + 2}→{members}": lambda: player.scale(members, timeout=300),
    }


def agent_env_patches(pod: dict[str, Any], env: list[str]) -> list[dict[str, Any]]:
    """JSON patch operations adding ``NAME=VALUE`` settings to the sidecar (the container
    named ``agent``) of the StatefulSet whose pod template is ``pod``."""
    where = next(f"/spec/template/spec/{kind}/{index}/env/-"
                 for kind in ("containers", "initContainers")
                 for index, container in enumerate(pod.get(kind) or [])
                 if container["name"] == "agent")
    return [{"op": "add", "path": where,
             "value": {"name": name, "value": value}}
            for name, value in (item.split("=", 1) for item in env)]


def name_every_member(patches: list[dict[str, Any]], size: int) -> bool:
    """Whether the store's own way's ``patches`` name a static cluster (etcd's
    ``--initial-cluster``); one that names fewer than ``size`` members is rewritten in
    place to name ``size`` (each pod a scale-up starts must be named), from its first
    entry, which must be ordinal 0's."""
    static = False
    for patch in patches:
        for container in patch.get("value") or []:
            args: list[str] = (container.get("args") or []) if isinstance(container, dict) else []
            for index, arg in enumerate(args):
                if not arg.startswith("--initial-cluster="):
                    continue
                static = True
                entries = arg.split("=", 1)[1].split(",")
                if len(entries) >= size:
                    continue
                first = entries[0]  # etcd-0=http://etcd-0.etcd:2380
                name = first.split("=", 1)[0]
                if not name.endswith("-0"):
                    raise ValueError(f"{arg}: the first member is not ordinal 0's")
                base = name.removesuffix("-0")
                args[index] = "--initial-cluster=" + ",".join(
                    first.replace(f"{base}-0", f"{base}-{ordinal}") for ordinal in range(size))
    return static


def measure(store: str, variant: str, workdir: Path, plane: ControlPlane, *,
            rate: float, runs: int = 1, agent_env: list[str] | None = None,
            members: int = 3) -> list[Row]:
    """Start the example three pods strong (scaled to ``members`` before the writer
    starts), write at ``rate`` throughout, and run every operation in turn, ``runs``
    times over (the last, the scale-down, leaves ``members`` pods for the next pass); a
    row each. ``agent_env``: more settings for the agent's sidecar."""
    patches = (yaml.safe_load((NATIVE / f"{store}.yaml").read_text())
               if variant == "own" else
               agent_env_patches(manifests.load(ROOT / "k8s" / store).pod_spec, agent_env)
               if agent_env else None)
    # A static cluster starts its ``members`` at once: its quorum counts every member
    # named (nine for a scale to nine), and three of them would never reach it. The
    # example bootstraps three and the rest join.
    whole = variant == "own" and name_every_member(patches or [], members + 2)
    player = StatefulSetPlayer(ROOT / "k8s" / store, workdir, control_plane=plane,
                               namespace=f"{store}-{variant}", json_patches=patches)
    kv_class = harness_class(store).kv_class
    auth = kv_class.credentials(player.example.secrets)

    names: dict[str, str] = {}  # every URL the writer was given, by its pod's name

    def ready_urls() -> list[str]:
        urls = {kv_class.client_url(p.ip, store): p.name for p in list(player.pods.values())
                if p.ready and not p.terminating}
        names.update(urls)
        return list(urls)

    def pod_urls() -> dict[str, str]:
        return {p.name: kv_class.client_url(p.ip, store) for p in list(player.pods.values())}

    def leader() -> int:
        assert watch is not None
        name = watch.leader()
        if name is None:
            raise RuntimeError(f"{store} ({variant}): no leader seen")
        return int(name.rsplit("-", 1)[1])

    watch = RaftWatch(store, pod_urls, auth=auth) if store in STATES else None
    writer = OpenLoopWriter(kv_class, ready_urls, rate=rate, auth=auth)
    rows: list[Row] = []
    with player:
        try:
            player.start(members if whole else 3)
            if player.replicas < members:
                player.scale(members, timeout=600)  # every pod Ready before the writer
            kv_class.setup(player)
            if watch is not None:
                watch.start()
            writer.start()
            time.sleep(3)  # a steady state before the first operation: the baseline writes
            steps = operations(player, leader if watch is not None else None, members)
            for run, name in ((r, n) for r in range(1, runs + 1) for n in steps):
                operation = steps[name]
                started = time.monotonic()
                began = utc(started)
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
                elections = (watch.elections(started, end) if watch is not None
                             else Elections(0, 0, 0.0))
                rows.append(Row(store, variant, name, run, round(ready - started, 2),
                                seen.writes,
                                seen.failed, round(seen.longest_gap, 3),
                                round(seen.p50 * 1000, 1), round(seen.p99 * 1000, 1),
                                elections.leader_changes, elections.term_increments,
                                round(elections.leaderless, 2), error,
                                failures(seen.reasons, names),
                                utc(seen.gap_from)))
                print(f"  {store} ({VARIANTS[variant]}) run {run} {name} (began {began} UTC): "
                      f"{asdict(rows[-1])}", flush=True)
                if error:
                    break
        finally:
            writer.stop()
            if watch is not None:
                watch.stop()
    return rows


def utc(moment: float) -> str:
    """A monotonic moment as the wall clock's time of day, UTC, to the millisecond."""
    wall = time.time() - (time.monotonic() - moment)
    return datetime.datetime.fromtimestamp(wall, datetime.UTC).strftime("%H:%M:%S.%f")[:-3]


def failures(reasons: tuple[tuple[str, int], ...], names: dict[str, str]) -> str:
    """The writer's reasons for failed writes with each URL named by its pod."""
    def named(why: str) -> str:
        url, sep, answer = why.partition(": ")
        return f"{names.get(url, url)}: {answer}" if sep else why
    return "; ".join(f"{count} {named(why)}" for why, count in reasons)


def print_rows(rows: list[Row]) -> None:
    """One line per store, operation and way: the median and the worst of its runs (the
    targets are judged on the worst: met only when every run met them)."""
    print("| store | operation | way | runs | longest gap s, median / worst "
          "| failed / writes, all runs | p99 ms, worst | leader changes, worst "
          "| term increments, worst | leaderless s, worst "
          "| Ready again s, median / worst | targets |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    groups: dict[tuple[str, str, str], list[Row]] = {}
    order: dict[tuple[str, str], int] = {}  # each store's operations in the order they ran
    for row in rows:
        groups.setdefault((row.store, row.operation, row.variant), []).append(row)
        order.setdefault((row.store, row.operation), len(order))
    for (store, operation, variant), runs in sorted(
            groups.items(), key=lambda g: (g[0][0], order[g[0][:2]], g[0][2])):
        gaps = [r.longest_gap for r in runs]
        readies = [r.ready_seconds for r in runs]
        errors = [f"run {r.run}: {r.error}" for r in runs if r.error]
        ready = (f"{statistics.median(readies):.1f} / {max(readies):.1f}" if not errors
                 else f"not all Ready ({'; '.join(errors)})")
        met = sum(1 for r in runs if r.met)
        verdict = (("met" if met == len(runs) else f"not met ({met} of {len(runs)} runs)")
                   if variant == "agent" else "")
        raft = (f"{max(r.leader_changes for r in runs)} | "
                f"{max(r.term_increments for r in runs)} | "
                f"{max(r.leaderless for r in runs):.1f}"
                if store in STATES else "— | — | —")  # Galera has no leader
        print(f"| {store} | {operation} | {VARIANTS[variant]} | {len(runs)} "
              f"| {statistics.median(gaps):.2f} / {max(gaps):.2f} "
              f"| {sum(r.failed for r in runs)} / {sum(r.writes for r in runs)} "
              f"| {max(r.p99_ms for r in runs):.0f} | {raft} | {ready} | {verdict} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stores", default="rqlite,etcd,consul,galera",
                        help="comma-separated stores to measure")
    parser.add_argument("--variants", default="agent,own",
                        help="agent (sts-agent), own (the store's own way), or both")
    parser.add_argument("--rate", type=float, default=100.0, help="writes a second")
    parser.add_argument("--galera-rate", type=float, default=GALERA_RATE,
                        help="Galera's writes a second (a connection per write)")
    parser.add_argument("--runs", type=int, default=5,
                        help="passes of the operations on each cluster (median and worst)")
    parser.add_argument("--members", type=int, default=3,
                        help="the cluster's size between operations (the example starts "
                             "three, then scales to it; the operations scale by 2)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--agent-env", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting for the agent's sidecar (repeatable): a variant "
                             "of the example measured as the agent's rows")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work directory (every container's log, kept-logs/ "
                             "under each node) to read a slow operation's logs after")
    args = parser.parse_args()
    if args.members < 3:
        parser.error("--members: at least 3 (the examples bootstrap three)")
    workdir = Path(tempfile.mkdtemp(prefix="sts-agent-bench-disruption-"))
    rows: list[Row] = []
    plane = ControlPlane(workdir / "control-plane").start()
    try:
        for store in args.stores.split(","):
            for variant in args.variants.split(","):
                rows += measure(store, variant, workdir / f"{store}-{variant}", plane,
                                rate=args.galera_rate if store == "galera" else args.rate,
                                runs=args.runs, agent_env=args.agent_env,
                                members=args.members)
    finally:
        plane.stop()
        if args.keep:
            print(f"work directory kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nDate: {datetime.date.today().isoformat()}; machine: {machine()}; "
          f"{args.rate:g} writes/s (Galera {args.galera_rate:g}); the operations in turn on "
          f"one cluster of {args.members}, {args.runs} times over"
          + (f"; the sidecar with {', '.join(args.agent_env)}" if args.agent_env else "")
          + "\n")
    print_rows(rows)
    if args.json:
        payload: list[dict[str, Any]] = [asdict(row) for row in rows]
        args.json.write_text(json.dumps(payload, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
