"""The soak: a k8s/ example scaled up and down and restarted over and over, with a client
writing throughout; counts acknowledged and lost writes and the longest wait for a write."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from agent.registry import STORES
from player.controlplane import ControlPlane
from player.demo import QUORUM_GAP_SECONDS, ROOT
from player.history import Verdict
from player.statefulset import StatefulSetPlayer
from player.wait import WaitTimeout, wait_until
from player.writer import writer_for

# How long the sidecars' views may take to show a finished step (a few polls).
MEMBERSHIP_SETTLE_SECONDS = 30.0


@dataclass
class SoakResult:
    """What a soak measured; ``ok`` is the verdict."""

    store: str
    seconds: float = 0.0
    cycles: int = 0
    steps: list[str] = field(default_factory=list)
    acknowledged: int = 0
    lost: int = 0
    longest_gap: float = 0.0
    membership_mismatches: list[str] = field(default_factory=list)
    removals: int = 0  # the MemberRemoved Events posted: each scale-down's, none a restart's
    history: Verdict | None = None  # the writer's reads and writes, checked by Porcupine

    @property
    def ok(self) -> bool:
        return (self.lost == 0 and self.longest_gap < QUORUM_GAP_SECONDS
                and not self.membership_mismatches and self.acknowledged > 0
                and self.history is not None and self.history.ok)

    def summary(self) -> str:
        return (f"soak {self.store}: {'OK' if self.ok else 'FAILED'} — {self.cycles} cycles "
                f"({len(self.steps)} steps) in {self.seconds:.0f} s; {self.acknowledged} "
                f"writes acknowledged, {self.lost} lost; longest wait between acknowledged "
                f"writes {self.longest_gap:.1f} s (limit {QUORUM_GAP_SECONDS:.0f} s); "
                f"membership = pods after every step: {not self.membership_mismatches}; "
                f"{self.removals} members removed; "
                f"history: {self.history.explain() if self.history else 'not checked'}")


def soak(store: str, workdir: Path, *, seconds: float, overrides: dict[str, str] | None = None,
         log: bool = False, control_plane: ControlPlane | None = None,
         namespace: str | None = None) -> SoakResult:
    """Cycles of scale 3→5, a restart (every other cycle a rolling restart of all five,
    else one pod deleted), scale 5→3, until ``seconds`` have passed (whole cycles).
    ``control_plane``: a running one to use, else the soak starts its own."""
    player = StatefulSetPlayer(ROOT / "k8s" / store, workdir, overrides=overrides,
                               control_plane=control_plane, namespace=namespace)
    writer = writer_for(player)
    result = SoakResult(store)

    def step(title: str) -> None:
        result.steps.append(title)

        def members_are_pods() -> bool:
            return sorted(m["name"] for m in player.members()) == sorted(
                p.name for p in player.pods.values())

        try:  # the sidecars' views follow a change within a poll or two
            wait_until(members_are_pods, what=f"members = pods after {title}",
                       timeout=MEMBERSHIP_SETTLE_SECONDS)
        except WaitTimeout:
            names = sorted(m["name"] for m in player.members())
            pods = sorted(p.name for p in player.pods.values())
            result.membership_mismatches.append(f"after {title}: members {names}, pods {pods}")
        if log:
            print(f"{time.monotonic() - started:7.1f}s  {title}: {len(writer.acknowledged)} "
                  f"acknowledged, longest wait {writer.longest_gap:.1f} s", flush=True)

    started = time.monotonic()
    with player:
        try:
            player.start(3)
            writer.start()
            while True:
                cycle = result.cycles
                player.scale(5)
                step(f"cycle {cycle}: scale to 5")
                if cycle % 2:
                    player.rolling_restart()
                    step(f"cycle {cycle}: rolling restart")
                else:
                    ordinal = cycle % 5
                    player.delete_pod(ordinal)
                    player.wait_ready(ordinal)
                    step(f"cycle {cycle}: pod {ordinal} deleted and back")
                player.scale(3)
                step(f"cycle {cycle}: scale to 3")
                result.cycles += 1
                if time.monotonic() - started >= seconds:
                    break
            writer.stop()
            leader_url = f"http://{player.pods[min(player.pods)].ip}:{STORES[store].client_port}"
            result.lost = len(writer.lost(leader_url))
            result.history = writer.check_history()
            result.removals = player.event_reasons().count("MemberRemoved")
        finally:
            writer.stop()
        result.seconds = time.monotonic() - started
        result.acknowledged = len(writer.acknowledged)
        result.longest_gap = writer.longest_gap
    return result


def main() -> int:
    """`make soak`: STORE (etcd, rqlite, consul; default etcd), SOAK_MINUTES (default 30)."""
    store = os.environ.get("STORE", "etcd")
    if store not in STORES:
        print(f"soak: STORE={store!r}: k8s/ examples exist for {sorted(STORES)}",
              file=sys.stderr)
        return 2
    minutes = float(os.environ.get("SOAK_MINUTES", "30"))
    workdir = Path(tempfile.mkdtemp(prefix=f"sts-agent-soak-{store}-"))
    print(f"soak: k8s/{store} for {minutes:g} min (whole cycles); work dir {workdir}")
    result = soak(store, workdir, seconds=minutes * 60, log=True)
    for mismatch in result.membership_mismatches:
        print(f"  {mismatch}")
    print(result.summary())
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
