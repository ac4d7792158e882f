"""The poll loop: whom it believes about membership, what it caches, how it survives bugs."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

from agent.errors import BackendError, BackendUnavailable
from agent.membership import Membership
from agent.model import ClusterView
from agent.readiness import Policy
from tests import fakes

A, B, C = "node-a", "node-b", "node-c"
URLS = {m: f"http://{m}:1" for m in (A, B, C)}


def view(self_id: str, leader: str | None, *, members: tuple[str, ...] = (A, B, C),
         learners: tuple[str, ...] = (), applied: int = 10, commit: int = 10) -> ClusterView:
    return fakes.view(self_id, leader, members, learners=learners, applied=applied,
                      commit=commit)


POLICY = Policy(stale_after_seconds=5, max_lag_entries=5)


@dataclass
class FakeStore:
    """Views by URL (None = the local store); an exception stands for a failing node."""

    answers: dict[str | None, ClusterView | Exception] = field(default_factory=dict)
    calls: list[str | None] = field(default_factory=list)

    async def view(self, api_url: str | None = None) -> ClusterView:
        self.calls.append(api_url)
        answer = self.answers.get(api_url, BackendUnavailable(f"{api_url} refused"))
        if isinstance(answer, Exception):
            raise answer
        return answer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def membership(store: FakeStore, clock: Clock | None = None) -> Membership:
    return Membership(store, policy=POLICY, poll_interval_seconds=1, poll_timeout_seconds=5,
                      clock=clock or Clock())


async def test_follower_believes_the_leader() -> None:
    store = FakeStore({None: view(A, B), URLS[B]: view(B, B, members=(B, C))})
    m = membership(store)
    snapshot = await m.poll_once()
    assert snapshot.authority_source == "leader"
    assert store.calls == [None, URLS[B]]
    assert m.verdict().reasons == ["not a member: node-a is not in the leader's configuration"]


async def test_leader_is_its_own_authority() -> None:
    store = FakeStore({None: view(B, B)})
    m = membership(store)
    assert (await m.poll_once()).authority_source == "local"
    assert store.calls == [None]
    assert m.verdict().ready


async def test_leader_down_then_peer_tells_membership() -> None:
    store = FakeStore({None: view(A, B), URLS[C]: view(C, None)})
    m = membership(store)
    await m.poll_once()
    assert m.verdict().reasons[0].startswith("no leader: leader node-b does not answer")
    assert m.metrics.store_errors.labels(kind="leader_unreachable")._value.get() == 1


async def test_stale_leader_that_no_longer_leads() -> None:
    store = FakeStore({None: view(A, B), URLS[B]: view(B, C)})
    m = membership(store)
    await m.poll_once()
    assert "no leader: leader node-b no longer leads (election in progress)" in m.verdict().reasons


async def test_local_store_gone_peers_say_removed() -> None:
    """etcd stops a removed member: the agent asks the peers it remembers."""
    store = FakeStore({None: view(A, B), URLS[B]: view(B, B)})
    clock = Clock()
    m = membership(store, clock)
    await m.poll_once()
    assert m.verdict().ready
    store.answers = {None: BackendUnavailable("refused"), URLS[B]: view(B, B, members=(B, C)),
                     URLS[C]: view(C, B, members=(B, C))}
    clock.now += 10
    snapshot = await m.poll_once()
    assert snapshot.self_id == A
    assert snapshot.authority_source is not None and "peer" in snapshot.authority_source
    assert "not a member: node-a is not in the leader's configuration" in m.verdict().reasons


async def test_garbage_counts_as_bad_answer() -> None:
    store = FakeStore({None: BackendError("not JSON")})
    m = membership(store)
    await m.poll_once()
    assert m.verdict().reasons[0] == "store unreachable: unusable answer: not JSON"
    assert m.metrics.store_errors.labels(kind="bad_answer")._value.get() == 1


async def test_readiness_body_cached_until_something_changes() -> None:
    store = FakeStore({None: view(B, B)})
    clock = Clock()
    m = membership(store, clock)
    assert m.readiness()[0] == 503
    await m.poll_once()
    status, body = m.readiness()
    assert status == 200 and json.loads(body)["ready"] is True
    assert m.readiness()[1] is body, "same bytes object: served from cache"
    clock.now += 6  # past stale_after without a poll
    status, body = m.readiness()
    assert status == 503 and "store unreachable for 6.0s" in body.decode()
    m.set_leaving()
    assert "leaving the cluster" in m.readiness()[1].decode()


async def test_leader_change_metric_and_gauges() -> None:
    store = FakeStore({None: view(B, B)})
    m = membership(store)
    await m.poll_once()
    store.answers = {None: view(B, C), URLS[C]: view(C, C)}
    await m.poll_once()
    text = m.metrics.exposition().decode()
    assert "sts_agent_leader_changes_total 1.0" in text
    assert "sts_agent_members 3.0" in text and "sts_agent_voters 3.0" in text
    assert 'sts_agent_check_ok{check="leader_known"} 1.0' in text


async def test_run_loop_survives_bugs_and_stops() -> None:
    polled_three_times = asyncio.Event()

    class Broken:
        calls = 0

        async def view(self, api_url: str | None = None) -> ClusterView:
            Broken.calls += 1
            if Broken.calls >= 3:
                polled_three_times.set()
            raise ZeroDivisionError("a bug")

    m = Membership(Broken(), policy=POLICY, poll_interval_seconds=0.01,
                   poll_timeout_seconds=1)
    stop = asyncio.Event()
    task = asyncio.create_task(m.run(stop))
    await asyncio.wait_for(polled_three_times.wait(), 5)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert m.metrics.store_errors.labels(kind="internal")._value.get() >= 3
    assert m.alive(30)[0]


class WritesBetweenReads(FakeStore):
    """A follower under a steady writer: every read of the leader comes after 50 more
    commits than the follower had applied when it was read (the follower itself never
    falls behind what the leader had committed before)."""

    def __init__(self) -> None:
        super().__init__()
        self.committed = 100

    async def view(self, api_url: str | None = None) -> ClusterView:
        self.calls.append(api_url)
        if api_url is None:
            return view(A, B, applied=self.committed, commit=self.committed)
        self.committed += 50  # written while the follower's answer was on its way
        return view(B, B, applied=self.committed, commit=self.committed)


async def test_writes_between_the_two_reads_are_not_lag() -> None:
    """The leader's commit index is taken from before the follower's applied index (the
    previous poll's): read after it, a busy follower would flap out of endpoints."""
    store = WritesBetweenReads()
    m = membership(store)
    await m.poll_once()  # nothing earlier to compare with: the current commit (50 behind)
    assert m.verdict().reasons == ["catching up: 50 entries behind the leader (max 5)"]
    for _ in range(5):
        snapshot = await m.poll_once()
        assert snapshot.lag == 0
        assert m.verdict().ready, m.verdict().reasons
    assert m.metrics.lag._value.get() == 0


async def test_a_follower_that_falls_behind_is_still_seen() -> None:
    store = FakeStore({None: view(A, B, applied=100), URLS[B]: view(B, B, commit=100)})
    m = membership(store)
    await m.poll_once()
    assert m.verdict().ready
    store.answers[URLS[B]] = view(B, B, commit=400)
    await m.poll_once()  # the new commit is measured against the next applied index
    store.answers[None] = view(A, B, applied=150)
    await m.poll_once()
    assert m.verdict().reasons == ["catching up: 250 entries behind the leader (max 5)"]
