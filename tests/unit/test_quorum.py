"""The quorum rules: adding, removing (parallel departures counted), choosing a successor."""

from __future__ import annotations

import pytest

from agent.model import ClusterView
from agent.quorum import (
    HAND_OFF_LAG,
    bootstrap_blocker,
    majority,
    quorum_for_add,
    quorum_for_removal,
    successor,
    update_strategy_problem,
)
from tests import fakes

URL = {i: f"http://n{i}:1" for i in range(5)}


def view(self_id: int, leader: int | None, ids: tuple[int, ...] = (0, 1, 2),
         learners: tuple[int, ...] = ()) -> ClusterView:
    """Nodes n0, n1, ... with their APIs at http://n<i>:1."""
    return fakes.view(f"n{self_id}", f"n{leader}" if leader is not None else None,
                      tuple(f"n{i}" for i in ids), learners=tuple(f"n{i}" for i in learners))


@pytest.mark.parametrize(("voters", "needed"), [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3)])
def test_majority(voters: int, needed: int) -> None:
    assert majority(voters) == needed


@pytest.mark.parametrize(
    ("ids", "learners", "reachable", "expected"),
    [
        ((0, 1, 2), (), {"n0", "n1"}, None),
        ((0, 1, 2), (), {"n0"}, "only 1 of the 2 remaining voters answer; 2 are needed"),
        ((0, 1, 2, 3, 4), (), {"n0", "n1", "n3"}, None),
        ((0, 1, 2, 3, 4), (), {"n0", "n1"}, "only 2 of the 4 remaining voters answer; 3"),
        ((2,), (), set(), "this is the last voter"),
        ((0, 1, 2), (2,), set(), None),  # a learner leaving never touches quorum
        ((0, 1), (), set(), None),  # already gone
    ],
)
def test_quorum_for_removal(ids: tuple[int, ...], learners: tuple[int, ...], reachable: set[str],
                      expected: str | None) -> None:
    got = quorum_for_removal(view(0, 0, ids, learners), "n2", reachable)
    if expected is None:
        assert got is None
    else:
        assert got is not None and got.startswith(expected)


def test_quorum_for_removal_counts_parallel_departures_as_gone() -> None:
    # 4 voters, n1 down, scale 4 -> 2: n3 must not go while n2 is leaving too.
    got = quorum_for_removal(view(0, 0, (0, 1, 2, 3)), "n3", {"n0", "n2"}, departing={"n2"})
    assert got is not None and got.startswith("only 1 of the 2 remaining voters answer")
    assert quorum_for_removal(view(0, 0, (0, 1, 2)), "n2", {"n0"}, departing={"n1"}) is None


def test_quorum_for_removal_needs_a_leader() -> None:
    assert quorum_for_removal(view(0, None), "n2", {"n0", "n1"}) == "no leader"


@pytest.mark.parametrize(
    ("answering", "ok"),
    [({"n0", "n1", "n2"}, True), ({"n0", "n1"}, True), ({"n0"}, False)],
)
def test_quorum_for_add(answering: set[str], ok: bool) -> None:
    listed = view(0, 0, (0, 1, 2, 3), learners=(3,)).members
    assert (quorum_for_add(listed, answering) is None) is ok




def test_successor_is_an_answering_voter_other_than_self() -> None:
    cluster = view(0, 0, (0, 1, 2, 3), learners=(1,))
    assert successor(cluster, "n0", {"n0", "n1", "n3"}) == cluster.member("n3")
    assert successor(cluster, "n0", {"n0", "n1"}) is None
    # A voter leaving in the same scale-down is no successor: it would hand off again.
    answering = {m.id for m in cluster.members}
    first = successor(cluster, "n0", answering)
    assert first is not None
    other = successor(cluster, "n0", answering, departing={first.id})
    assert other is not None and other.id not in {"n0", first.id}
    assert successor(cluster, "n0", answering,
                     departing={m.id for m in cluster.voters}) is None


def test_successor_is_the_most_caught_up_voter() -> None:
    """Raft makes the target catch up before it takes over: the voter that has applied
    most takes over soonest; one the store vouched for without a read comes last."""
    cluster = view(0, 0, (0, 1, 2, 3, 4))
    applied: dict[str, int | None] = {"n0": 900, "n1": 400, "n2": 880, "n3": None,
                                      "n4": 870}
    assert successor(cluster, "n0", applied) == cluster.member("n2")
    assert successor(cluster, "n0", applied, departing={"n2"}) == cluster.member("n4")
    assert successor(cluster, "n0", {"n0": 900, "n3": None}) == cluster.member("n3")
    assert successor(cluster, "n0", {"n0": 1, "n1": 5, "n2": 5}) == cluster.member("n1")


def test_successor_is_the_voter_started_last_where_the_store_says() -> None:
    """hashicorp/raft reuses a pooled connection without a retry: a target holding one
    to a peer restarted since loses its vote and the hand-off ends in an election. The
    voter started last holds none; one far behind (the leader not sending to it) is
    passed over; without start times, the most caught-up voter as before."""
    cluster = view(0, 0, (0, 1, 2, 3, 4))
    applied: dict[str, int | None] = {"n0": 5000, "n1": 4990, "n2": 5000, "n3": 4900,
                                      "n4": 2000}
    started: dict[str, float | None] = {"n1": 100.0, "n2": 50.0, "n3": 300.0,
                                        "n4": 400.0}
    # n4 started last but is 3000 entries behind; n3 is the last within HAND_OFF_LAG.
    assert successor(cluster, "n0", applied, started=started) == cluster.member("n3")
    assert successor(cluster, "n0", applied, departing={"n3"},
                     started=started) == cluster.member("n1")
    # Start times known for some only: those are chosen among.
    assert successor(cluster, "n0", applied, started={"n1": 1.0}) == cluster.member("n1")
    # None known (etcd, Consul): the most caught up.
    assert successor(cluster, "n0", applied, started={"n1": None}) == cluster.member("n2")
    assert successor(cluster, "n0", applied) == cluster.member("n2")
    assert 5000 - HAND_OFF_LAG <= 4900 and 5000 - HAND_OFF_LAG > 2000


@pytest.mark.parametrize(("replicas", "max_unavailable", "unsafe"), [
    (3, None, False),  # the default: one at a time
    (3, 1, False),
    (3, 2, True),
    (5, 2, False),
    (5, 3, True),
    (5, "40%", False),  # rounded up: 2
    (5, "50%", True),  # rounded up: 3
    (3, "10%", False),  # at least 1
    (2, 1, False),  # two members spare none, but one at a time is all a rollout can do
    (2, 2, True),
    (1, 1, False),
])
def test_update_strategy_problem(replicas: int, max_unavailable: int | str | None,
                                 unsafe: bool) -> None:
    problem = update_strategy_problem(replicas, max_unavailable)
    assert (problem is not None) is unsafe
    if problem is not None:
        assert f"maxUnavailable {max_unavailable}" in problem


@pytest.mark.parametrize(("states", "expected"), [
    ({}, None),  # a one-member cluster
    ({"s-1": False, "s-2": False}, None),
    ({"s-1": False, "s-2": True}, "s-2 holds raft state"),
    ({"s-1": True, "s-2": True}, "s-1, s-2 hold raft state"),
    ({"s-1": None, "s-2": False}, "no answer from s-1"),
    ({"s-1": None, "s-2": True}, "s-2 holds raft state"),  # state outranks silence
])
def test_bootstrap_only_when_no_other_member_may_hold_state(
        states: dict[str, bool | None], expected: str | None) -> None:
    blocker = bootstrap_blocker(states)
    if expected is None:
        assert blocker is None
    else:
        assert blocker is not None and blocker.startswith(expected)
