"""Readiness: every check of the verdict, each failure named, from snapshots (no I/O)."""

from __future__ import annotations

import pytest

from agent.model import ClusterView, Snapshot
from agent.readiness import Policy, judge
from tests import fakes

A, B, C = "node-a", "node-b", "node-c"
URLS = {m: f"http://{m}:1" for m in (A, B, C)}


def view(self_id: str, leader: str | None, *, members: tuple[str, ...] = (A, B, C),
         learners: tuple[str, ...] = (), applied: int = 10, commit: int = 10) -> ClusterView:
    return fakes.view(self_id, leader, members, learners=learners, applied=applied,
                      commit=commit)


POLICY = Policy(stale_after_seconds=5, max_lag_entries=5)


def reasons(snapshot: Snapshot, *, now: float = 100.0, leaving: bool = False,
            policy: Policy = POLICY) -> list[str]:
    return judge(snapshot, now=now, policy=policy, leaving=leaving).reasons


def healthy() -> Snapshot:
    return Snapshot(local=view(A, B), local_ok_at=99.0, authority=view(B, B),
                    authority_source="leader", self_id=A)


def test_all_checks_pass() -> None:
    verdict = judge(healthy(), now=100.0, policy=POLICY, leaving=False)
    assert verdict.ready and verdict.reasons == []
    assert [c.name for c in verdict.checks] == [
        "store_reachable", "leader_known", "member", "caught_up", "not_leaving"]


def test_startup_before_first_poll() -> None:
    assert reasons(Snapshot()) == [
        "store unreachable: not polled yet",
        "no leader known: store unreachable",
        "membership unknown: store never answered",
        "catch-up unknown: no applied or commit index",
    ]


def test_one_failed_poll_within_staleness_keeps_ready() -> None:
    snapshot = Snapshot(local=view(A, B), local_ok_at=97.0, local_error="timed out",
                        authority=view(B, B), self_id=A)
    assert reasons(snapshot) == []


def test_stale_store() -> None:
    snapshot = Snapshot(local=view(A, B), local_ok_at=90.0, local_error="connection refused",
                        authority=view(B, B), self_id=A)
    got = reasons(snapshot)
    assert got[0] == "store unreachable for 10.0s: connection refused"
    assert "no leader known: store unreachable" in got


def test_no_leader_and_unreachable_leader() -> None:
    assert "no leader" in reasons(Snapshot(local=view(A, None), local_ok_at=99.0, self_id=A))
    snapshot = Snapshot(local=view(A, B), local_ok_at=99.0, self_id=A,
                        leader_error="does not answer (timed out)")
    assert "no leader: leader node-b does not answer (timed out)" in reasons(snapshot)


def test_not_a_member_and_learner() -> None:
    removed = Snapshot(local=view(A, B), local_ok_at=99.0, self_id=A,
                       authority=view(B, B, members=(B, C)))
    assert reasons(removed) == ["not a member: node-a is not in the leader's configuration"]
    learner = Snapshot(local=view(A, B), local_ok_at=99.0, self_id=A,
                       authority=view(B, B, learners=(A,)))
    assert reasons(learner) == ["not a voter: node-a is a learner"]
    assert reasons(learner, policy=Policy(accept_learner=True)) == []


def test_catching_up() -> None:
    snapshot = Snapshot(local=view(A, B, applied=100), local_ok_at=99.0, self_id=A,
                        authority=view(B, B, commit=106))
    assert reasons(snapshot) == ["catching up: 6 entries behind the leader (max 5)"]
    snapshot = Snapshot(local=view(A, B, applied=100), local_ok_at=99.0, self_id=A,
                        authority=view(B, B, commit=105))
    assert reasons(snapshot) == []


def test_unmeasured_catch_up_says_why() -> None:
    """A view that cannot measure its catch-up says why in the reason (its first note)."""
    import dataclasses

    local = dataclasses.replace(view(A, B), applied_index=None,
                                notes=("the cluster has this server at a:2, it now listens "
                                       "at z:2",))
    snapshot = Snapshot(local=local, local_ok_at=99.0, self_id=A, authority=view(B, B))
    assert reasons(snapshot) == [
        "catch-up unknown: the cluster has this server at a:2, it now listens at z:2"]


def test_leaving() -> None:
    assert reasons(healthy(), leaving=True) == ["leaving the cluster"]


@pytest.mark.parametrize("stale", [False, True])
def test_verdict_json_shape(stale: bool) -> None:
    snapshot = healthy()
    verdict = judge(snapshot, now=200.0 if stale else 100.0, policy=POLICY, leaving=False)
    body = verdict.as_dict()
    assert body["ready"] is (not stale)
    assert all(set(c) == {"name", "ok", "reason"} for c in body["checks"])
