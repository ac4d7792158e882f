"""Galera's departure against a fake group: its turn (highest ordinal first), then confirmed."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from agent.errors import BackendUnavailable
from agent.leave import Leaver
from agent.membership import Membership
from agent.model import ClusterView, Member
from agent.readiness import Policy
from agent.stores.galera.leave import GaleraDeparture
from tests.unit.test_leave import FakeReplicas, Recorder


async def tick(seconds: float) -> None:
    """No waiting, but a turn of the loop (so a deadline can fire)."""
    await asyncio.sleep(0)


def address(ordinal: int) -> str:
    return f"10.0.0.{ordinal}:3306"


@dataclass
class FakeGroup:
    """A Primary component of pods ``present``; this node is ``me``. Each view of the
    local node lets ``on_poll`` change the group first (another pod leaving)."""

    me: int
    present: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    stopped: bool = False
    asked: list[str] = field(default_factory=list)
    polls: int = 0
    leave_above_after: int = 2  # the pod above leaves after this many local polls

    def _view(self, self_ordinal: int) -> ClusterView:
        members = tuple(Member(address(o), address(o), address(o)) for o in self.present)
        me = address(self_ordinal)
        return ClusterView(members=members, leader_id=me, self_id=me)

    async def view(self, api_url: str | None = None) -> ClusterView:
        if api_url is None:
            self.polls += 1
            above = [o for o in self.present if o > self.me]
            if above and self.polls > self.leave_above_after:
                self.present.remove(max(above))
            if self.stopped:
                raise BackendUnavailable("mariadbd stopped")
            return self._view(self.me)
        self.asked.append(api_url)
        ordinal = int(api_url.split(".")[-1].split(":")[0])
        return self._view(ordinal)



def galera_leaver(group: FakeGroup, *, replicas: int, events: Recorder | None = None,
                  deadline: float = 10, departure: GaleraDeparture | None = None) -> Leaver:
    membership = Membership(group, policy=Policy(), poll_interval_seconds=1,
                            poll_timeout_seconds=1)
    return Leaver(membership, departure or GaleraDeparture(), policy="scale-down",
                  ordinal=group.me,
                        statefulset="galera", replicas=FakeReplicas(replicas), events=events,
                        deadline_seconds=deadline, sleep=tick)


async def test_waits_for_the_pods_above_then_its_turn() -> None:
    group = FakeGroup(me=3)  # scaled 5 -> 3: pods 3 and 4 leave, 4 first
    outcome = await galera_leaver(group, replicas=3).leave()
    assert outcome.result == "removed" and "ordinal 3's turn" in outcome.reason
    assert group.present == [0, 1, 2, 3]  # 4 left before 3 was released
    assert group.polls > group.leave_above_after


async def test_the_highest_goes_at_once() -> None:
    group = FakeGroup(me=4)
    outcome = await galera_leaver(group, replicas=3).leave()
    assert outcome.result == "removed" and group.polls == 1


async def test_a_restart_stays_without_waiting() -> None:
    group = FakeGroup(me=1)
    outcome = await galera_leaver(group, replicas=5).leave()
    assert outcome.result == "stayed" and "not a scale-down" in outcome.reason


@dataclass
class Drains:
    """The drains a departure waited, and what the group was at each."""

    group: FakeGroup
    waited: list[tuple[float, list[int]]] = field(default_factory=list)

    async def sleep(self, seconds: float) -> None:
        self.waited.append((seconds, list(self.group.present)))


async def test_a_restart_drains_before_mariadbd_stops_and_stays() -> None:
    """The pod is unready from the leave's start; its SIGTERM waits the drain."""
    group = FakeGroup(me=1)
    drains = Drains(group)
    leaver = galera_leaver(group, replicas=5,
                           departure=GaleraDeparture(drain_seconds=2, sleep=drains.sleep))
    outcome = await leaver.leave()
    assert outcome.result == "stayed" and drains.waited == [(2, [0, 1, 2, 3, 4])]


async def test_a_departure_drains_at_its_turn_and_never_past_half_the_deadline() -> None:
    group = FakeGroup(me=3)  # 5 -> 3: pod 4 leaves first, then pod 3 drains and stops
    drains = Drains(group)
    leaver = galera_leaver(group, replicas=3, deadline=3,
                           departure=GaleraDeparture(drain_seconds=5, sleep=drains.sleep))
    outcome = await leaver.leave()
    assert outcome.result == "removed" and drains.waited == [(1.5, [0, 1, 2, 3])]


async def test_the_final_leave_is_confirmed_on_a_peer() -> None:
    """SIGTERM after the store's preStop: the store stopped, a peer's view drops it."""
    group = FakeGroup(me=4)
    events = Recorder()
    leaver = galera_leaver(group, replicas=4, events=events)
    assert (await leaver.leave()).result == "removed"  # the store's preStop: released
    group.present.remove(4)  # mariadbd's clean stop: the group's view shrinks
    group.stopped = True
    outcome = await leaver.leave(final=True)
    await leaver.drain()
    assert outcome.result == "removed" and "confirmed by 10.0.0.0:3306" in outcome.reason
    assert "a view of 4" in outcome.reason
    assert [e for e, _ in events.events] == ["MemberLeaving", "MemberRemoved"]


async def test_an_unconfirmed_leave_fails_at_the_deadline() -> None:
    group = FakeGroup(me=4)
    events = Recorder()
    leaver = galera_leaver(group, replicas=4, events=events, deadline=0.3)
    outcome = await leaver.leave(final=True)  # the peers still list it: never confirmed
    await leaver.drain()
    assert outcome.result == "failed" and "not confirmed" in outcome.reason
    assert ("MemberRemoveFailed", True) in events.events
