"""The readiness verdict: a snapshot in, every check named with why it fails; no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.model import Snapshot


@dataclass(frozen=True, slots=True)
class Check:
    """One readiness condition and, when it fails, why."""

    name: str
    ok: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Verdict:
    """All checks; ready when every one passes."""

    checks: tuple[Check, ...]

    @property
    def ready(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def reasons(self) -> list[str]:
        return [check.reason for check in self.checks if not check.ok]

    def as_dict(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "checks": [{"name": c.name, "ok": c.ok, "reason": c.reason} for c in self.checks],
        }


@dataclass
class Policy:
    """The knobs of the verdict."""

    stale_after_seconds: float = 5.0
    max_lag_entries: int = 100
    accept_learner: bool = False


def judge(snapshot: Snapshot, *, now: float, policy: Policy, leaving: bool) -> Verdict:
    """Readiness from a snapshot: pure, so every branch is unit-tested."""
    local = snapshot.local
    fresh = snapshot.local_ok_at is not None and (
        now - snapshot.local_ok_at <= policy.stale_after_seconds
    )
    if snapshot.local_ok_at is None:
        reachable = Check("store_reachable", False,
                          f"store unreachable: {snapshot.local_error or 'not polled yet'}")
    elif not fresh:
        reachable = Check("store_reachable", False,
                          f"store unreachable for {now - snapshot.local_ok_at:.1f}s: "
                          f"{snapshot.local_error or 'no poll since'}")
    else:
        reachable = Check("store_reachable", True)

    if local is None or not fresh:
        leader = Check("leader_known", False, "no leader known: store unreachable")
    elif local.leader_id is None:
        leader = Check("leader_known", False, "no leader")
    elif snapshot.leader_error is not None:
        leader = Check("leader_known", False,
                       f"no leader: leader {local.leader_id} {snapshot.leader_error}")
    else:
        leader = Check("leader_known", True)

    authority = snapshot.authority
    self_id = snapshot.self_id
    if self_id is None:
        member = Check("member", False, "membership unknown: store never answered")
    elif authority is None:
        member = Check("member", False, "membership unknown: no leader to ask")
    else:
        me = authority.member(self_id)
        if me is None:
            member = Check("member", False, f"not a member: {self_id} is not in the "
                                            "leader's configuration")
        elif not me.voter and not policy.accept_learner:
            member = Check("member", False, f"not a voter: {self_id} is a learner")
        else:
            member = Check("member", True)

    commit = snapshot.leader_commit
    applied = local.applied_index if local is not None and fresh else None
    if applied is None or commit is None:
        why = (local.notes[0] if local is not None and fresh and local.notes
               else "no applied or commit index")
        caught_up = Check("caught_up", False, f"catch-up unknown: {why}")
    elif commit - applied > policy.max_lag_entries:
        caught_up = Check("caught_up", False,
                          f"catching up: {commit - applied} entries behind the leader "
                          f"(max {policy.max_lag_entries})")
    else:
        caught_up = Check("caught_up", True)

    own = tuple(Check(name, why is None, why or "") for name, why in local.checks
                ) if local is not None and fresh else ()
    not_leaving = Check("not_leaving", not leaving, "leaving the cluster" if leaving else "")
    return Verdict((reachable, leader, member, caught_up, *own, not_leaving))
