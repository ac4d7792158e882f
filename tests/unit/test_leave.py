"""Leave: the decision, the procedure against a fake store, access rules."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest

from agent.errors import BackendError, BackendUnavailable, KubeError
from agent.leave import Leaver, decide
from agent.membership import Membership
from agent.model import ClusterView
from agent.readiness import Policy
from agent.reconfigure import RaftDeparture
from agent.server import allowed_to_leave
from tests import fakes

URL = {i: f"http://n{i}:1" for i in range(5)}


def view(self_id: int, leader: int | None, ids: tuple[int, ...] = (0, 1, 2),
         learners: tuple[int, ...] = ()) -> ClusterView:
    """Nodes n0, n1, ... with their APIs at http://n<i>:1."""
    return fakes.view(f"n{self_id}", f"n{leader}" if leader is not None else None,
                      tuple(f"n{i}" for i in ids), learners=tuple(f"n{i}" for i in learners))


async def test_decide_retries_transient_api_errors() -> None:
    replicas = FakeReplicas(2, failures=[KubeError("timed out", retryable=True)] * 2)
    decision = await decide("scale-down", ordinal=2, statefulset="db", replicas=replicas,
                            retry_seconds=5, sleep=no_sleep)
    assert decision.leave and replicas.failures == []
    gone = FakeReplicas(2, failures=[KubeError("forbidden", retryable=False)])
    decision = await decide("scale-down", ordinal=2, statefulset="db", replicas=gone,
                            retry_seconds=5, sleep=no_sleep)
    assert not decision.leave and "forbidden" in decision.reason


@dataclass
class FakeReplicas:
    replicas: int | Exception
    start: int = 0
    failures: list[Exception] = field(default_factory=list)

    async def statefulset_scale(self, name: str) -> tuple[int, int]:
        if self.failures:
            raise self.failures.pop(0)
        if isinstance(self.replicas, Exception):
            raise self.replicas
        return self.replicas, self.start


@pytest.mark.parametrize(
    ("policy", "ordinal", "replicas", "leave", "reason"),
    [
        ("scale-down", 2, FakeReplicas(2), True, "scale-down: ordinal 2 is outside the kept "
                                                 "ordinals 0..1"),
        ("scale-down", 1, FakeReplicas(3), False, "not a scale-down: ordinal 1 is kept"),
        ("scale-down", 4, FakeReplicas(KubeError("forbidden")), False, "cannot read"),
        ("scale-down", 4, FakeReplicas(KubeError("not found", not_found=True)), False,
         "StatefulSet db is gone (deleted, not scaled down)"),
        ("scale-down", 4, FakeReplicas(KubeError("GET statefulset db: HTTP 404: Not Found")),
         False, "cannot read StatefulSet db"),
        ("scale-down", 0, FakeReplicas(0), False, "scale to zero: keeping membership"),
        ("scale-down", 3, FakeReplicas(3, start=1), False, "not a scale-down"),
        ("scale-down", 4, FakeReplicas(3, start=1), True, "scale-down: ordinal 4"),
        ("scale-down", 0, FakeReplicas(3, start=1), True, "scale-down: ordinal 0"),
        ("scale-down", 4, None, False, "no Kubernetes API configured"),
        ("always", 0, None, True, "leave policy is 'always'"),
        ("never", 9, FakeReplicas(0), False, "leave policy is 'never'"),
    ],
)
async def test_decide(policy: str, ordinal: int, replicas: FakeReplicas | None, leave: bool,
                      reason: str) -> None:
    decision = await decide(policy, ordinal=ordinal, statefulset="db", replicas=replicas)
    assert decision.leave is leave
    assert decision.reason.startswith(reason)
    # In doubt only when the API could not say: a deleted StatefulSet is no doubt.
    assert decision.unknown is reason.startswith("cannot read")


@dataclass
class FakeCluster:
    """A 3-node store whose membership changes when remove() succeeds."""

    ids: list[int] = field(default_factory=lambda: [0, 1, 2])
    leader: int = 0
    refuse_removals: int = 0
    down: set[int] = field(default_factory=set)
    removed: list[str] = field(default_factory=list)
    transfers: list[str] = field(default_factory=list)
    can_transfer: ClassVar[bool] = True

    def _view(self, me: int) -> ClusterView:
        return view(me, self.leader, tuple(self.ids))

    async def view(self, api_url: str | None = None) -> ClusterView:
        me = 2 if api_url is None else int(api_url.split("n")[1].split(":")[0])
        if me in self.down:
            raise BackendUnavailable(f"n{me} down")
        if me not in self.ids and api_url is not None:
            raise BackendUnavailable(f"n{me} removed")
        return self._view(me)

    async def remove(self, member_id: str, *, leader_url: str) -> None:
        if self.refuse_removals:
            self.refuse_removals -= 1
            raise BackendUnavailable("unhealthy cluster")
        self.removed.append(member_id)
        number = int(member_id[1:])
        if number in self.ids:
            self.ids.remove(number)
        if self.leader == number:
            self.leader = self.ids[0]

    async def transfer_leadership(self, *, leader_url: str, target_id: str) -> None:
        self.transfers.append(target_id)
        self.leader = int(target_id[1:])


@dataclass
class Recorder:
    events: list[tuple[str, bool]] = field(default_factory=list)

    async def event(self, *, reason: str, message: str, warning: bool = False) -> None:
        self.events.append((reason, warning))


async def no_sleep(seconds: float) -> None:
    return None


def leaver(store: FakeCluster, *, replicas: int = 2, deadline: float = 10,
           events: Recorder | None = None) -> Leaver:
    membership = Membership(store, policy=Policy(), poll_interval_seconds=1,
                            poll_timeout_seconds=1)
    return Leaver(membership, RaftDeparture(store), policy="scale-down", ordinal=2,
                  statefulset="db",
                  replicas=FakeReplicas(replicas), events=events, deadline_seconds=deadline,
                  sleep=no_sleep)


async def test_removes_itself_through_the_leader_after_retries() -> None:
    store = FakeCluster(refuse_removals=2)
    events = Recorder()
    subject = leaver(store, events=events)
    outcome = await subject.leave()
    await subject.drain()
    assert outcome.result == "removed", outcome
    assert store.removed == ["n2"] and store.ids == [0, 1]
    assert "confirmed by n0" in outcome.reason
    assert events.events == [("MemberRemoved", False)]


async def test_leader_hands_off_first() -> None:
    store = FakeCluster(leader=2)
    outcome = await leaver(store).leave()
    assert outcome.result == "removed"
    assert store.transfers == ["n0"]
    assert store.removed == ["n2"]


async def test_leader_denied_a_hand_off_removes_itself_while_leading() -> None:
    """A store that refuses hand-offs for good (rqlite without the 'leader-ops'
    permission) must not keep the leave waiting: the leader removes itself, once."""
    store = FakeCluster(leader=2)
    tried: list[str] = []

    async def deny(*, leader_url: str, target_id: str) -> None:
        tried.append(target_id)
        raise BackendError("denied: needs the 'leader-ops' permission")

    store.transfer_leadership = deny  # type: ignore[method-assign]
    outcome = await leaver(store).leave()
    assert outcome.result == "removed", outcome
    assert tried == ["n0"] and store.removed == ["n2"]


async def test_restart_stays_and_readiness_comes_back() -> None:
    store = FakeCluster()
    subject = leaver(store, replicas=3)
    outcome = await subject.leave()
    assert outcome.result == "stayed"
    assert store.removed == []
    assert not subject.membership.leaving, "a main-container restart must not strand us"
    # A later real scale-down decides afresh.
    subject.replicas = FakeReplicas(2)
    assert (await subject.leave()).result == "removed"


async def test_restarting_leader_hands_off_and_stays() -> None:
    store = FakeCluster(leader=2)
    outcome = await leaver(store, replicas=3).leave()
    assert outcome.result == "stayed"
    assert outcome.reason.endswith("; leadership handed to n0"), outcome.reason
    assert store.transfers == ["n0"] and store.removed == []


async def test_restarting_follower_hands_nothing_off() -> None:
    store = FakeCluster(leader=0)
    outcome = await leaver(store, replicas=3).leave()
    assert outcome.result == "stayed" and "handed" not in outcome.reason
    assert store.transfers == []


async def test_refused_hand_off_still_stays() -> None:
    store = FakeCluster(leader=2)

    async def refuse(*, leader_url: str, target_id: str) -> None:
        raise BackendUnavailable("transfer refused")

    store.transfer_leadership = refuse  # type: ignore[method-assign]
    outcome = await leaver(store, replicas=3).leave()
    assert outcome.result == "stayed" and "handed" not in outcome.reason
    assert store.leader == 2


async def test_sigterm_stay_is_final() -> None:
    subject = leaver(FakeCluster(), replicas=3)
    assert (await subject.leave(final=True)).result == "stayed"
    assert subject.membership.leaving


async def test_idempotent_and_concurrent_triggers_share_one_run() -> None:
    import asyncio

    store = FakeCluster()
    subject = leaver(store)
    first, second = await asyncio.gather(subject.leave(), subject.leave())
    assert first == second and store.removed == ["n2"]
    assert await subject.leave() == first


async def test_quorum_would_break_gives_up_at_deadline() -> None:
    store = FakeCluster(down={1})
    events = Recorder()
    subject = leaver(store, deadline=0.3, events=events)
    subject.retry_seconds = 0.01

    async def short_sleep(seconds: float) -> None:
        import asyncio
        await asyncio.sleep(0.01)

    subject.sleep = short_sleep
    outcome = await subject.leave()
    await subject.drain()
    assert outcome.result == "failed"
    assert "deadline" in outcome.reason and "remaining voters answer" in outcome.reason
    assert store.removed == []
    assert events.events == [("MemberRemoveFailed", True)]


async def test_short_deadline_is_named_when_it_passes() -> None:
    store = FakeCluster(down={1})
    subject = leaver(store, deadline=0.2)
    subject.deadline_problem = "the leave deadline (0.2 s) is shorter than a removal"
    subject.retry_seconds = 0.01

    async def short_sleep(seconds: float) -> None:
        import asyncio
        await asyncio.sleep(0.01)

    subject.sleep = short_sleep
    outcome = await subject.leave()
    assert outcome.result == "failed"
    assert outcome.reason.endswith("(the leave deadline (0.2 s) is shorter than a removal)")


@pytest.mark.parametrize(
    ("remote", "header", "token", "allowed"),
    [
        ("127.0.0.1", None, None, True),
        ("127.0.20.3", None, None, True),
        ("::1", None, None, True),
        ("::ffff:127.0.0.1", None, None, True),
        ("::ffff:10.1.2.3", None, None, False),
        ("10.1.2.3", None, None, False),
        ("10.1.2.3", "Bearer s3cret", "s3cret", True),
        ("10.1.2.3", "Bearer wrong", "s3cret", False),
        ("10.1.2.3", "s3cret", "s3cret", False),
        ("10.1.2.3", "Bearer ", "", False),
        (None, None, None, False),
    ],
)
def test_who_may_ask_to_leave(remote: str | None, header: str | None, token: str | None,
                              allowed: bool, tmp_path: Path) -> None:
    token_file = None
    if token is not None:
        token_file = tmp_path / "token"
        token_file.write_text(token + "\n")
    assert allowed_to_leave(remote, header, token_file) is allowed


def hooked_leaver(store: FakeCluster, replicas: int, **timing: Any) -> Leaver:
    """Pod 2 of StatefulSet db with ``replicas`` kept, as the store's preStop meets it."""
    membership = Membership(store, policy=Policy(), poll_interval_seconds=1,
                            poll_timeout_seconds=1)
    return Leaver(membership, RaftDeparture(store), policy="scale-down", ordinal=2,
                  statefulset="db",
                  replicas=FakeReplicas(replicas), events=None, deadline_seconds=10,
                  **{"sleep": asyncio.sleep, **timing})


async def test_leave_after_joins_the_leave_in_flight() -> None:
    """The store container's preStop (GET /leave/wait) holds until the member is out."""
    store = FakeCluster()
    subject = hooked_leaver(store, 2)
    waiting = asyncio.create_task(subject.leave_after(window=5))
    await asyncio.sleep(0)
    outcome = await subject.leave()
    assert (await waiting) == outcome
    assert outcome.result == "removed"
    assert store.removed == ["n2"]  # one procedure, one removal


async def test_leave_after_starts_the_leave_when_no_preStop_did() -> None:
    """The agent's own preStop is late (a slow start under its CPU limit) or never
    comes: after the window the store's hook starts the leave itself."""
    clock = [0.0]

    async def tick(seconds: float) -> None:
        clock[0] += seconds

    store = FakeCluster()
    subject = hooked_leaver(store, 2, clock=lambda: clock[0], sleep=tick)
    outcome = await subject.leave_after(window=3)
    assert clock[0] >= 3
    assert outcome.result == "removed"
    assert store.removed == ["n2"]


async def test_leave_after_on_a_restart_stays() -> None:
    store = FakeCluster()
    subject = hooked_leaver(store, 3)
    outcome = await subject.leave_after(window=0)
    assert outcome.result == "stayed"
    assert store.removed == []
    assert not subject.membership.leaving  # only restarting: readiness comes back
