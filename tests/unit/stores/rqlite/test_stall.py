"""The stalled follower's hand-off: only a lagging voter that applies nothing for the
window, once per stall, to another reachable voter; never a leader, a joiner, a node that
moves or has caught up."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from agent.config.settings import Settings
from agent.errors import BackendUnavailable
from agent.model import ClusterView, Member, Snapshot
from agent.stores.rqlite.api import RqliteBackend
from agent.stores.rqlite.options import RqliteOptions
from agent.stores.rqlite.stall import StalledFollower

AFTER = 3.0
MAX_LAG = 100


class Events:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def event(self, *, reason: str, message: str, warning: bool = False) -> None:
        self.sent.append((reason, message))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Transfers:
    def __init__(self, error: Exception | None = None) -> None:
        self.asked: list[tuple[str, str]] = []
        self.error = error

    async def __call__(self, *, leader_url: str, target_id: str) -> None:
        self.asked.append((leader_url, target_id))
        if self.error is not None:
            raise self.error


def member(node: str, *, voter: bool = True, reachable: bool | None = True) -> Member:
    return Member(id=node, name=node, address=f"{node}.rqlite:4002",
                  api_url=f"http://{node}.rqlite:4001", voter=voter, reachable=reachable)


def snapshot(applied: int, *, commit: int = 5000, me: str = "rqlite-1",
             leader: str = "rqlite-0", members: tuple[Member, ...] | None = None,
             error: str | None = None) -> Snapshot:
    members = members or (member("rqlite-0"), member("rqlite-1"), member("rqlite-2"))
    authority = ClusterView(members=members, leader_id=leader, self_id=leader,
                            applied_index=commit, commit_index=commit)
    local = ClusterView(members=members, leader_id=leader, self_id=me, applied_index=applied,
                        commit_index=applied)
    return Snapshot(local=local, authority=authority, self_id=me, local_error=error)


def watcher(transfers: Transfers, clock: Clock) -> StalledFollower:
    return StalledFollower(transfers, after_seconds=AFTER, max_lag=MAX_LAG, clock=clock)


async def stall(stalled: StalledFollower, clock: Clock, events: Events,
                polls: list[dict[str, Any]]) -> None:
    """Polls a second apart, each with its own snapshot arguments."""
    for kwargs in polls:
        await stalled.on_poll(snapshot(**kwargs), events)
        clock.now += 1.0


async def test_a_voter_applying_nothing_hands_leadership_to_another_once() -> None:
    transfers, clock, events = Transfers(), Clock(), Events()
    stalled = watcher(transfers, clock)
    with capture_logs() as logs:
        await stall(stalled, clock, events, [{"applied": 1000}] * 6)
    # The streak starts at the first poll; the window ends at the fourth; once only.
    assert transfers.asked == [("http://rqlite-0.rqlite:4001", "rqlite-2")]
    assert [e["event"] for e in logs] == ["rqlite_stall_hand_off"]
    assert logs[0]["to"] == "rqlite-2" and logs[0]["waited_seconds"] == AFTER
    assert [reason for reason, _ in events.sent] == ["LeadershipMovedForCatchUp"]
    assert "4000 entries" in events.sent[0][1]
    assert stalled.hand_offs == 1


async def test_a_node_that_moves_or_catches_up_is_left_alone() -> None:
    transfers, clock, events = Transfers(), Clock(), Events()
    stalled = watcher(transfers, clock)
    # Applying, however far behind: replication runs.
    await stall(stalled, clock, events, [{"applied": 1000 + 200 * n} for n in range(8)])
    # Within max_lag of the leader, applying nothing (no writes): not a stall.
    await stall(stalled, clock, events, [{"applied": 4950}] * 8)
    assert transfers.asked == [] and events.sent == []


async def test_a_new_stall_after_catching_up_may_hand_off_again() -> None:
    transfers, clock, events = Transfers(), Clock(), Events()
    stalled = watcher(transfers, clock)
    await stall(stalled, clock, events, [{"applied": 1000}] * 5)
    await stall(stalled, clock, events, [{"applied": 5000}])  # caught up: the stall ended
    await stall(stalled, clock, events, [{"applied": 2000, "commit": 9000}] * 5)
    assert [target for _, target in transfers.asked] == ["rqlite-2", "rqlite-2"]


@pytest.mark.parametrize("kwargs", [
    {"me": "rqlite-0"},  # the leader itself
    {"members": (member("rqlite-0"), member("rqlite-1", voter=False), member("rqlite-2"))},
    {"members": (member("rqlite-0"), member("rqlite-2"))},  # not a member yet: joining
    {"error": "connection refused"},  # its store did not answer this poll
], ids=["leader", "non-voter", "not a member", "no answer"])
async def test_only_a_lagging_voter_following_a_leader_counts(kwargs: dict[str, Any]) -> None:
    transfers, clock, events = Transfers(), Clock(), Events()
    stalled = watcher(transfers, clock)
    await stall(stalled, clock, events, [{"applied": 1000, **kwargs}] * 8)
    assert transfers.asked == []


async def test_no_other_reachable_voter_is_said_once_and_nothing_moves() -> None:
    transfers, clock, events = Transfers(), Clock(), Events()
    stalled = watcher(transfers, clock)
    members = (member("rqlite-0"), member("rqlite-1"), member("rqlite-2", reachable=False))
    with capture_logs() as logs:
        await stall(stalled, clock, events, [{"applied": 1000, "members": members}] * 8)
    assert transfers.asked == []
    assert [(e["event"], e["reason"]) for e in logs] == [
        ("rqlite_stall_left", "no other reachable voter to lead")]


async def test_a_refused_hand_off_is_logged_not_raised_and_not_repeated() -> None:
    transfers = Transfers(BackendUnavailable("rqlite http://rqlite-0.rqlite:4001: timed out"))
    clock, events = Clock(), Events()
    stalled = watcher(transfers, clock)
    with capture_logs() as logs:
        await stall(stalled, clock, events, [{"applied": 1000}] * 8)
    assert len(transfers.asked) == 1 and events.sent == [] and stalled.hand_offs == 0
    assert [e["event"] for e in logs] == ["rqlite_stall_hand_off_failed"]


def test_the_backend_watches_only_when_configured() -> None:
    """AGENT_RQLITE_STALL_HAND_OFF_SECONDS 0 (the default): never; set: the window."""
    plain = RqliteBackend(httpx.AsyncClient(), "http://rqlite-1.rqlite:4001",
                          settings=Settings(backend="rqlite"))
    assert plain.stall is None
    settings = Settings(backend="rqlite").with_options(
        RqliteOptions(rqlite_stall_hand_off_seconds=2.5))
    watching = RqliteBackend(httpx.AsyncClient(), "http://rqlite-1.rqlite:4001",
                             settings=settings)
    assert watching.stall is not None and watching.stall.after_seconds == 2.5
    assert watching.stall.max_lag == settings.max_lag_entries
