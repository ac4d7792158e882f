"""The repair's rules and its loop against a fake store and a fake API: who is removed,
when, and every case in which nothing is."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest

from agent.errors import BackendError, BackendUnavailable, KubeError
from agent.kube import PodState
from agent.membership import Membership
from agent.metrics import Metrics
from agent.model import ClusterView, Member
from agent.readiness import Policy
from agent.repair import Repairer, member_ordinal, pod_problem, suspects
from tests.fakes import FakeTime

NOW = datetime.datetime(2026, 12, 2, 12, 0, tzinfo=datetime.UTC)


def member(ordinal: int, *, learner: bool = False, name: str | None = None) -> Member:
    host = f"db-{ordinal}.db.ns.svc.cluster.local"
    return Member(id=f"id{ordinal}", name=f"db-{ordinal}" if name is None else name,
                  address=f"http://{host}:2380", api_url=f"http://db-{ordinal}:1",
                  voter=not learner)


def running(name: str) -> PodState:
    return PodState(name=name, uid="u", phase="Running")


@dataclass
class FakeStore:
    """Members db-<ordinal>; this sidecar's store is db-0, which leads."""

    ordinals: list[int] = field(default_factory=lambda: [0, 1, 2, 3])
    learners: set[int] = field(default_factory=set)
    down: set[int] = field(default_factory=set)
    leader: int | None = 0
    refuse: BaseException | None = None
    ignore_removals: bool = False
    removed: list[str] = field(default_factory=list)
    can_transfer: ClassVar[bool] = False

    async def view(self, api_url: str | None = None) -> ClusterView:
        me = 0 if api_url is None else int(api_url.split("-")[1].split(":")[0])
        if me in self.down or me not in self.ordinals:
            raise BackendUnavailable(f"db-{me} down")
        return ClusterView(
            members=tuple(member(o, learner=o in self.learners) for o in self.ordinals),
            leader_id=f"id{self.leader}" if self.leader is not None else None,
            self_id=f"id{me}", applied_index=5, commit_index=5)

    async def remove(self, member_id: str, *, leader_url: str) -> None:
        if self.refuse is not None:
            raise self.refuse
        self.removed.append(member_id)
        if not self.ignore_removals:
            self.ordinals.remove(int(member_id[2:]))

    async def transfer_leadership(self, *, leader_url: str, target_id: str) -> None:
        raise AssertionError("the repair never transfers leadership")


@dataclass
class FakeApi:
    replicas: int = 3
    start: int = 0
    pods: dict[str, PodState | None] = field(default_factory=dict)
    failing: KubeError | None = None
    pod_reads: list[str] = field(default_factory=list)
    scale_reads: int = 0
    events: list[tuple[str, str, bool]] = field(default_factory=list)

    async def statefulset_scale(self, name: str) -> tuple[int, int]:
        self.scale_reads += 1
        if self.failing is not None:
            raise self.failing
        return self.replicas, self.start

    async def pod(self, name: str) -> PodState | None:
        self.pod_reads.append(name)
        if self.failing is not None:
            raise self.failing
        return self.pods.get(name, running(name))

    async def event(self, *, reason: str, message: str, warning: bool = False) -> None:
        self.events.append((reason, message, warning))


@dataclass
class Rig:
    store: Any  # FakeStore or FakeConsul
    api: FakeApi
    time: FakeTime
    membership: Membership
    repairer: Repairer

    async def poll_and_pass(self) -> str | None:
        await self.membership.poll_once()
        return await self.repairer.pass_once()

    async def after(self, seconds: float) -> str | None:
        """Passes every 5 s for ``seconds``; the member removed, if any."""
        removed = None
        for _ in range(int(seconds // 5) + 1):
            removed = await self.poll_and_pass() or removed
            self.time.now += 5
        return removed


def rig(store: FakeStore | FakeConsul | None = None, api: FakeApi | None = None) -> Rig:
    store = store or FakeStore()
    api = api or FakeApi()
    time = FakeTime()
    metrics = Metrics()
    membership = Membership(store, policy=Policy(), poll_interval_seconds=1,
                            poll_timeout_seconds=4, clock=time.clock, metrics=metrics)
    repairer = Repairer(membership, store, pods=api, events=api, statefulset="db",
                        after_seconds=60, interval_seconds=5, metrics=metrics,
                        clock=time.clock, wall_clock=lambda: NOW, sleep=time.sleep)
    return Rig(store, api, time, membership, repairer)


# --- the pure rules ----------------------------------------------------------------------

@pytest.mark.parametrize(("name", "address", "ordinal"), [
    ("db-3", "10.0.0.9:8300", 3),
    ("", "http://db-4.db.ns.svc.cluster.local:2380", 4),  # an etcd member never started
    ("db-2.db.ns.svc.cluster.local:4002", "x", 2),  # rqlite: node ids are addresses
    ("other-1", "10.0.0.1:2380", None),  # another StatefulSet's pod
    ("(unknown)", "10.0.0.7:8300", None),  # Consul: no serf member at that address
    ("db-x", "", None),
])
def test_member_ordinal(name: str, address: str, ordinal: int | None) -> None:
    assert member_ordinal(Member(id="i", name=name, address=address), "db") == ordinal


def test_suspects_are_silent_members_of_dropped_ordinals_highest_first() -> None:
    view = ClusterView(members=tuple(member(o) for o in range(5)), leader_id="id0",
                       self_id="id0")
    found = suspects(view, keep=range(0, 2), statefulset="db", answering={"id0", "id3"})
    assert [s.member.id for s in found] == ["id4", "id2"]  # id3 answers, id1 is kept


def test_the_leader_is_never_a_suspect() -> None:
    view = ClusterView(members=(member(0), member(5)), leader_id="id5", self_id="id5")
    assert [s.member.id for s in suspects(view, keep=range(0, 2), statefulset="db",
                                          answering=set())] == []


@pytest.mark.parametrize(("pod", "problem"), [
    (None, "its pod does not exist"),
    (PodState("db-3", "u", "Pending"), "its pod is Pending"),
    (PodState("db-3", "u", "Failed"), "its pod is Failed"),
    (PodState("db-3", "u", "Running"), None),
    # Terminating within its grace period: its own preStop and SIGTERM remove it.
    (PodState("db-3", "u", "Running", NOW + datetime.timedelta(seconds=20)), None),
    (PodState("db-3", "u", "Running", NOW - datetime.timedelta(seconds=20)), None),
    (PodState("db-3", "u", "Running", NOW - datetime.timedelta(seconds=31)),
     "its pod is 31 s past its deletion deadline"),
])
def test_pod_problem(pod: PodState | None, problem: str | None) -> None:
    found = pod_problem(pod, NOW)
    assert found == problem if problem is None else (found or "").startswith(problem)


# --- the loop ----------------------------------------------------------------------------

async def test_a_dead_member_of_a_dropped_ordinal_is_removed_after_the_wait() -> None:
    r = rig(FakeStore(down={3}), FakeApi(pods={"db-3": None}))
    assert await r.after(55) is None
    assert r.store.removed == []
    assert "db-3" in r.repairer.state.waiting
    assert r.membership.metrics.repair_waiting._value.get() == 1
    assert await r.after(10) == "db-3"
    assert r.store.removed == ["id3"]
    assert r.store.ordinals == [0, 1, 2]
    (reason, message, warning), = r.api.events
    assert reason == "StaleMemberRemoved" and not warning
    assert "ordinal 3 is outside the kept ordinals 0..2, its pod does not exist" in message
    assert r.repairer.state.removed == ["db-3"]
    assert r.membership.metrics.repairs.labels(result="removed")._value.get() == 1
    await r.poll_and_pass()
    assert r.membership.metrics.repair_waiting._value.get() == 0


async def test_a_healthy_cluster_costs_no_api_call() -> None:
    r = rig()
    await r.after(120)
    assert r.api.scale_reads == 0 and r.api.pod_reads == []
    assert r.repairer.state.leads


async def test_a_kept_ordinal_is_never_removed() -> None:
    r = rig(FakeStore(down={2}), FakeApi(replicas=4, pods={"db-2": None}))
    assert await r.after(600) is None
    assert r.store.removed == [] and r.api.pod_reads == []


async def test_a_running_pod_of_a_dropped_ordinal_is_left_to_its_own_leave() -> None:
    r = rig(FakeStore(down={3}))
    assert await r.after(120) is None
    assert r.store.removed == []
    assert r.repairer.state.waiting == {"db-3": "pod db-3 may still run it: its own "
                                                "leave removes it"}


async def test_one_member_a_pass_and_orphan_learners_too() -> None:
    store = FakeStore(ordinals=[0, 1, 2, 3, 4], learners={4}, down={3, 4})
    r = rig(store, FakeApi(pods={"db-3": None, "db-4": PodState("db-4", "u", "Pending")}))
    await r.after(60)
    assert store.removed == ["id4"]  # the highest first
    await r.poll_and_pass()
    assert store.removed == ["id4", "id3"]
    assert store.ordinals == [0, 1, 2]


async def test_only_the_leader_repairs_and_silence_restarts_when_it_leads_again() -> None:
    store = FakeStore(down={3}, leader=1)
    r = rig(store, FakeApi(pods={"db-3": None}))
    await r.after(120)
    assert store.removed == [] and not r.repairer.state.leads
    store.leader = 0
    assert await r.after(55) is None  # its wait starts when this node leads
    assert await r.after(10) == "db-3"


async def test_a_member_that_answers_again_starts_its_wait_afresh() -> None:
    store = FakeStore(down={3})
    r = rig(store, FakeApi(pods={"db-3": None}))
    await r.after(50)
    store.down.clear()
    await r.poll_and_pass()
    store.down.add(3)
    assert await r.after(55) is None
    assert await r.after(10) == "db-3"


@pytest.mark.parametrize("failure", [KubeError("GET statefulset db: HTTP 403: forbidden"),
                                     KubeError("timed out", retryable=True)])
async def test_an_unreadable_api_removes_nothing(failure: KubeError) -> None:
    r = rig(FakeStore(down={3}), FakeApi(pods={"db-3": None}, failing=failure))
    assert await r.after(300) is None
    assert r.store.removed == []
    assert "removing nothing" in (r.repairer.state.blocked or "")
    # Said once, not once a pass.
    assert [e[0] for e in r.api.events] == ["MemberRepairBlocked"]


async def test_scale_to_zero_removes_nothing() -> None:
    r = rig(FakeStore(down={3}), FakeApi(replicas=0, pods={"db-3": None}))
    assert await r.after(300) is None
    assert r.api.pod_reads == []


async def test_the_quorum_guard_holds_a_removal_back() -> None:
    """Members 0..4, 3 and 4 dropped and dead, 2 dead too (kept): removing 4 would leave
    2 of the 4 remaining voters answering, no majority."""
    store = FakeStore(ordinals=[0, 1, 2, 3, 4], down={2, 3, 4})
    r = rig(store, FakeApi(pods={"db-3": None, "db-4": None}))
    assert await r.after(120) is None
    assert store.removed == []
    assert "only 2 of the 4 remaining voters answer" in (r.repairer.state.blocked or "")
    store.down.discard(2)
    await r.poll_and_pass()
    await r.poll_and_pass()
    assert store.removed == ["id4", "id3"]


async def test_a_refused_removal_is_counted_and_tried_again() -> None:
    store = FakeStore(down={3}, refuse=BackendUnavailable("etcdserver: unhealthy cluster"))
    r = rig(store, FakeApi(pods={"db-3": None}))
    await r.after(65)
    assert "unhealthy cluster" in (r.repairer.state.blocked or "")
    assert r.membership.metrics.repairs.labels(result="failed")._value.get() >= 1
    store.refuse = None
    assert await r.poll_and_pass() == "db-3"


async def test_a_denied_removal_is_reported() -> None:
    store = FakeStore(down={3}, refuse=BackendError("rqlite denied removing id3: HTTP 403"))
    r = rig(store, FakeApi(pods={"db-3": None}))
    assert await r.after(65) is None
    assert "the store refused: rqlite denied" in (r.repairer.state.blocked or "")


async def test_a_removal_not_confirmed_is_not_reported_done() -> None:
    store = FakeStore(down={3}, ignore_removals=True)
    r = rig(store, FakeApi(pods={"db-3": None}))
    assert await r.after(65) is None
    assert store.removed  # sent, but the leader's view still lists it
    assert "not gone from the leader's view" in (r.repairer.state.blocked or "")
    assert not any(e[0] == "StaleMemberRemoved" for e in r.api.events)


async def test_a_leaving_leader_does_not_repair() -> None:
    r = rig(FakeStore(down={3}), FakeApi(pods={"db-3": None}))
    r.membership.set_leaving()
    assert await r.after(120) is None
    assert not r.repairer.state.leads


# --- old identities (a Consul server back under a new node ID) ---------------------------

def consul_entry(member_id: str, name: str, ip: str) -> Member:
    return Member(id=member_id, name=name, address=f"{ip}:8300", api_url=f"http://{ip}:1")


def test_an_unnamed_entry_of_a_kept_pod_answering_as_another_is_an_old_identity() -> None:
    view = ClusterView(members=(consul_entry("A0", "db-0", "10.0.0.1"),
                                consul_entry("A1", "db-1", "10.0.0.2"),
                                consul_entry("A2", "(unknown)", "10.0.0.3"),
                                consul_entry("B2", "db-2", "10.0.0.9")),
                       leader_id="A0", self_id="A0")
    everyone_but_a2 = {"A0", "A1", "B2"}
    found = suspects(view, keep=range(3), statefulset="db", answering=everyone_but_a2,
                     remembered={"A2": 2})
    assert [(s.member.id, s.ordinal, s.now_as) for s in found] == [("A2", 2, "B2")]
    # Never placed by any view: never touched.
    assert suspects(view, keep=range(3), statefulset="db", answering=everyone_but_a2) == []
    # Its pod does not answer as another member (yet): it may be that pod's server.
    assert suspects(view, keep=range(3), statefulset="db", answering={"A0", "A1"},
                    remembered={"A2": 2}) == []
    # Remembered of a dropped ordinal: a dropped suspect, its pod to be checked.
    found = suspects(view, keep=range(2), statefulset="db", answering=everyone_but_a2,
                     remembered={"A2": 2})
    assert [(s.member.id, s.now_as) for s in found] == [("A2", None)]


@dataclass
class FakeConsul:
    """Entries as Consul's raft configuration lists them; ``silent`` do not answer."""

    entries: list[Member]
    silent: set[str] = field(default_factory=set)
    removed: list[str] = field(default_factory=list)
    can_transfer: ClassVar[bool] = False

    async def view(self, api_url: str | None = None) -> ClusterView:
        me = next((m for m in self.entries if m.api_url == api_url), self.entries[0])
        if me.id in self.silent:
            raise BackendUnavailable(f"{me.id} down")
        return ClusterView(members=tuple(self.entries), leader_id=self.entries[0].id,
                           self_id=me.id, applied_index=5, commit_index=5)

    async def remove(self, member_id: str, *, leader_url: str) -> None:
        self.removed.append(member_id)
        self.entries = [m for m in self.entries if m.id != member_id]

    async def transfer_leadership(self, *, leader_url: str, target_id: str) -> None:
        raise AssertionError("the repair never transfers leadership")


async def test_a_server_back_under_a_new_id_has_its_old_entry_removed() -> None:
    store = FakeConsul([consul_entry("A0", "db-0", "10.0.0.1"),
                        consul_entry("A1", "db-1", "10.0.0.2"),
                        consul_entry("A2", "db-2", "10.0.0.3")])
    r = rig(store)
    passes = r.after
    await passes(10)  # db-2 seen as A2 while it ran
    # Its pod dies with its volume and comes back at a new address under a new id:
    # Consul adds B2, and names A2 by nobody (no server at its old address).
    store.entries[2] = consul_entry("A2", "(unknown)", "10.0.0.3")
    store.entries.append(consul_entry("B2", "db-2", "10.0.0.9"))
    store.silent.add("A2")
    assert await passes(55) is None
    assert r.repairer.state.waiting == {"A2 (once db-2)": "silent for 55 s of the 60 s the "
                                                        "repair waits"}
    assert await passes(10) == "A2 (once db-2)"
    assert store.removed == ["A2"]
    assert r.api.pod_reads == []  # a kept pod: its pod is not what decides
    (reason, message, _), = r.api.events
    assert reason == "StaleMemberRemoved"
    assert "an old identity of db-2, which answers as member B2 now" in message


async def test_a_restarted_server_on_a_new_address_is_not_an_old_identity() -> None:
    """The same id at a new address: until Consul updates its entry, the entry has no
    name and does not answer, but no other entry answers as that pod: nothing to do."""
    store = FakeConsul([consul_entry("A0", "db-0", "10.0.0.1"),
                        consul_entry("A1", "db-1", "10.0.0.2"),
                        consul_entry("A2", "db-2", "10.0.0.3")])
    r = rig(store)
    await r.poll_and_pass()
    store.entries[2] = consul_entry("A2", "(unknown)", "10.0.0.3")
    store.silent.add("A2")
    assert await r.after(300) is None
    assert store.removed == []
