"""rqlite join planning: every start a StatefulSet can produce, as a table."""

from __future__ import annotations

import pytest

from agent.model import Member
from agent.stores.rqlite.plan import plan_start, same_address


def addr(i: int) -> str:
    return f"rqlite-{i}.rqlite.prod.svc.cluster.local:4002"


def member(i: int, *, mid: str | None = None, address: str | None = None) -> Member:
    return Member(id=mid or f"rqlite-{i}", name=mid or f"rqlite-{i}",
                  address=address or addr(i))


THREE = [member(0), member(1), member(2)]


def plan(i: int, members: list[Member] | None, has_state: bool,
         bootstrap: bool = True) -> tuple[str, tuple[str, ...]]:
    result = plan_start(node_id=f"rqlite-{i}", raft_address=addr(i), members=members,
                         has_state=has_state, bootstrap_member=bootstrap, bootstrap_blocker=None)
    assert result.reason
    return result.state, result.remove


@pytest.mark.parametrize(
    ("case", "ordinal", "members", "has_state", "bootstrap", "expected"),
    [
        ("fresh cluster", 0, None, False, True, ("new", ())),
        ("later ordinal, no cluster yet", 3, None, False, False, ("wait", ())),
        ("whole-cluster restart", 1, None, True, True, ("restart", ())),
        ("whole-cluster restart, later ordinal", 4, None, True, False, ("restart", ())),
        ("rolling restart", 1, THREE, True, True, ("restart", ())),
        ("scale-up", 3, THREE, False, False, ("join", ())),
        ("removed, returns with state", 2, THREE[:2], True, True, ("join", ())),
        ("removed, returns wiped", 2, THREE[:2], False, True, ("join", ())),
        ("volume lost, still configured", 2, THREE, False, True, ("join", ("rqlite-2",))),
        ("our address under another id", 2, [*THREE[:2], member(2, mid="old-id")], True,
         True, ("join", ("old-id",))),
        ("same id, new address", 2, [*THREE[:2], member(2, address="10.0.0.9:4002")], True,
         True, ("join", ())),
    ],
)
def test_plan(case: str, ordinal: int, members: list[Member] | None, has_state: bool,
              bootstrap: bool, expected: tuple[str, tuple[str, ...]]) -> None:
    assert plan(ordinal, members, has_state, bootstrap) == expected, case


@pytest.mark.parametrize(("has_state", "bootstrap", "expected"), [
    (False, True, "wait"),  # wiped bootstrap member during an election: never "new"
    (False, False, "wait"),
    (True, True, "restart"),  # its own raft state: restarting is safe
])
def test_a_cluster_without_a_leader_is_waited_for(has_state: bool, bootstrap: bool,
                                                  expected: str) -> None:
    result = plan_start(node_id="rqlite-0", raft_address=addr(0), members=None,
                        has_state=has_state, bootstrap_member=bootstrap,
                        formed_at="http://rqlite-1:4001", bootstrap_blocker=None)
    assert result.state == expected
    if expected == "wait":
        assert "knows no leader" in result.reason


def test_a_restart_never_changes_membership() -> None:
    for i in range(3):
        assert plan(i, THREE, True) == ("restart", ())


@pytest.mark.parametrize(("reported", "ours", "same"), [
    ("rqlite-0.rqlite:4002", "rqlite-0.rqlite.prod.svc.cluster.local:4002", True),
    ("rqlite-0.rqlite.prod.svc.cluster.local.:4002", "rqlite-0.rqlite.prod.svc.cluster.local:4002",
     True),
    ("rqlite-1.rqlite:4002", "rqlite-10.rqlite.prod.svc.cluster.local:4002", False),
    ("rqlite-0.rqlite:4003", "rqlite-0.rqlite.prod.svc.cluster.local:4002", False),
    ("10.0.0.1:4002", "10.0.0.1:4002", True),
    ("10.0.0.1:4002", "10.0.0.12:4002", False),
    (":4002", "10.0.0.1:4002", False),
])
def test_same_address(reported: str, ours: str, same: bool) -> None:
    assert same_address(reported, ours) is same


def test_no_bootstrap_unless_every_bootstrap_member_is_proven_empty() -> None:
    """A whole-cluster outage with this pod's volume lost: no peer answers yet, so no
    leader and no raft state is seen. Bootstrapping would keep its old entry and let it
    vote with an empty log; it waits until the peers say they have no state."""
    result = plan_start(node_id="rqlite-0", raft_address=addr(0), members=None,
                        has_state=False, bootstrap_member=True,
                        bootstrap_blocker="no answer from rqlite-1")
    assert result.state == "wait"
    assert "not bootstrapping: no answer from rqlite-1" in result.reason
    restart = plan_start(node_id="rqlite-0", raft_address=addr(0), members=None,
                         has_state=True, bootstrap_member=True,
                         bootstrap_blocker="no answer from rqlite-1")
    assert restart.state == "restart"  # its own raft state: never blocked
