"""Membership repair: the leader removes members whose pods left for good without leaving."""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from agent.errors import AgentError, BackendError, KubeError
from agent.identity import ordinal_of_member, pod_name
from agent.kube import PodState
from agent.leave import Events, Replicas
from agent.membership import Membership
from agent.metrics import Metrics
from agent.model import ClusterView, Member
from agent.quorum import quorum_for_removal
from agent.storekit.capabilities import Reconfigurable
from agent.survey import progress

log = structlog.get_logger("agent.repair")

# A pod whose deletion deadline (its deletionTimestamp: the request's time plus its grace
# period) passed this long ago has no kubelet finishing it: its node is gone.
OVERDUE_SECONDS = 30.0
# How long a removal may take to show in the leader's own view before the pass gives up
# (the next pass reads everything again).
CONFIRM_SECONDS = 10.0


class Pods(Replicas, Protocol):
    """The Kubernetes reads the repair makes: the StatefulSet's scale and single pods."""

    async def pod(self, name: str) -> PodState | None: ...


@dataclass(frozen=True, slots=True)
class Suspect:
    """A silent member the repair may remove: of an ordinal the StatefulSet no longer
    keeps (once its pod is checked), or an old identity of a kept pod that answers as
    another member now (``now_as``: that member's id)."""

    member: Member
    ordinal: int
    now_as: str | None = None


def member_ordinal(member: Member, statefulset: str) -> int | None:
    """The ordinal of this StatefulSet's pod that a member belongs to: from its name, else
    from the host of its raft address (an etcd member added but never started has no
    name yet, only its peer URL). None for anything else: such a member is never
    touched."""
    for text in (member.name, member.address):
        host = text.split("://", 1)[-1]
        ordinal = ordinal_of_member(host, statefulset)
        if ordinal is not None:
            return ordinal
    return None


def suspects(view: ClusterView, *, keep: range, statefulset: str,
             answering: Collection[str],
             remembered: Mapping[str, int] | None = None) -> list[Suspect]:
    """Silent members the repair may remove, never the node that answered ``view`` (the
    leader): those of an ordinal outside ``keep`` (highest first, as the StatefulSet
    controller removes pods), then old identities of kept pods.

    A member's ordinal comes from what the store says of it now, else from
    ``remembered`` (member id -> ordinal, from earlier views): Consul names a raft entry
    by the serf member at its address, so the entry of a server that came back on a new
    address under a new node ID (its volume lost) has no name any more. Such an entry is
    an old identity when its pod answers now as another member, named by the store:
    a pod runs one server."""
    remembered = remembered or {}
    current = {m.id: member_ordinal(m, statefulset) for m in view.members}
    answering_as: dict[int, str] = {}
    for member in view.members:
        ordinal = current[member.id]
        if ordinal is not None and member.id in answering:
            answering_as.setdefault(ordinal, member.id)
    dropped, old = [], []
    for member in view.members:
        if member.id == view.self_id or member.id in answering:
            continue
        ordinal = current[member.id]
        if ordinal is None:
            ordinal = remembered.get(member.id)
        if ordinal is None:
            continue
        if ordinal not in keep:
            dropped.append(Suspect(member, ordinal))
        elif answering_as.get(ordinal, member.id) != member.id:
            old.append(Suspect(member, ordinal, now_as=answering_as[ordinal]))
    return [*sorted(dropped, key=lambda s: (-s.ordinal, s.member.id)),
            *sorted(old, key=lambda s: (s.ordinal, s.member.id))]


def pod_problem(pod: PodState | None, now: datetime.datetime) -> str | None:
    """Why ``pod`` cannot be running its member any more, or None while it may be (a
    running pod of a dropped ordinal is still to be deleted, and its own preStop and
    SIGTERM remove it then)."""
    if pod is None:
        return "its pod does not exist"
    if pod.deleting_since is not None:
        overdue = (now - pod.deleting_since).total_seconds()
        if overdue > OVERDUE_SECONDS:
            return (f"its pod is {overdue:.0f} s past its deletion deadline (its node is "
                    "gone: no kubelet runs its hooks)")
        return None  # terminating within its grace period: its own leave runs
    if pod.phase != "Running":
        return f"its pod is {pod.phase}"
    return None


@dataclass
class RepairState:
    """What the last pass saw, for /status (and tests)."""

    leads: bool = False
    passes: int = 0
    keep: range | None = None
    waiting: dict[str, str] = field(default_factory=dict)  # member name -> why not yet
    blocked: str | None = None  # why nothing could be removed, when something should be
    removed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"leads": self.leads, "passes": self.passes,
                "kept_ordinals": ([self.keep.start, self.keep.stop - 1]
                                  if self.keep is not None and len(self.keep) else None),
                "waiting": dict(self.waiting), "blocked": self.blocked,
                "removed": list(self.removed)}


class Repairer:
    """The sidecar's repair loop. It acts only on the node that leads, reads the cluster
    there, and removes at most one member a pass, under the quorum guard of a leave,
    then confirms it in the leader's view.

    A member is removed only when it has not answered for ``after_seconds`` while this
    node led, and either its ordinal is outside the StatefulSet's kept ordinals (a kept
    one's pod comes back) and its pod does not exist or cannot run it (``pod_problem``),
    or it is an old identity of a kept pod that answers as another member now (a Consul
    server whose volume was lost comes back under a new node ID). Any doubt (the API
    unreadable, a pod that may still run it, a member no view ever placed) keeps it.
    """

    def __init__(self, membership: Membership, backend: Reconfigurable, *, pods: Pods,
                 events: Events | None, statefulset: str, after_seconds: float,
                 interval_seconds: float, metrics: Metrics,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], datetime.datetime] = (
                     lambda: datetime.datetime.now(datetime.UTC)),
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.membership = membership
        self.backend = backend
        self.pods = pods
        self.events = events
        self.statefulset = statefulset
        self.after_seconds = after_seconds
        self.interval_seconds = interval_seconds
        self.metrics = metrics
        self.clock = clock
        self.wall_clock = wall_clock
        self.sleep = sleep
        self.state = RepairState()
        self._silent_since: dict[str, float] = {}
        self._ordinals: dict[str, int] = {}  # member id -> ordinal, from earlier views
        self._said: str | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """A pass every ``interval_seconds`` until ``stop``; a failed pass is logged."""
        log.info("repair_start", after_s=self.after_seconds, interval_s=self.interval_seconds)
        while not stop.is_set():
            try:
                await self.pass_once()
            except Exception:  # a bug must not stop the sidecar: logged, tried next pass
                log.exception("repair_pass_failed")
            try:
                async with asyncio.timeout(self.interval_seconds):
                    await stop.wait()
            except TimeoutError:
                pass

    async def pass_once(self) -> str | None:
        """One pass; the name of the member removed, if one was."""
        self.state.passes += 1
        snapshot = self.membership.snapshot
        view = snapshot.authority
        if view is not None:
            self._remember(view)
        leads = (view is not None and snapshot.authority_source == "local" and view.leads
                 and not self.membership.leaving)
        self.state.leads = leads
        if not leads or view is None:
            # A node that leads again starts every member's silence afresh.
            self._silent_since.clear()
            self.state.waiting.clear()
            self.state.blocked = None
            self.metrics.repair_waiting.set(0)
            return None
        answering = await progress(self.membership.view_at, view.members)
        now = self.clock()
        for member in view.members:
            if member.id in answering:
                self._silent_since.pop(member.id, None)
            else:
                self._silent_since.setdefault(member.id, now)
        for member_id in set(self._silent_since) - {m.id for m in view.members}:
            del self._silent_since[member_id]
        if not self._silent_since:
            self.metrics.repair_waiting.set(0)
            await self._settle(waiting={}, blocked=None)
            return None
        try:
            desired, start = await self.pods.statefulset_scale(self.statefulset)
        except KubeError as exc:
            await self._settle(waiting={}, blocked=f"cannot read StatefulSet {self.statefulset} "
                                             f"({exc.message}): removing nothing")
            return None
        keep = range(start, start + desired)
        self.state.keep = keep
        if desired == 0:
            self.metrics.repair_waiting.set(0)
            await self._settle(waiting={}, blocked=None)  # parked: every member comes back
            return None
        waiting: dict[str, str] = {}
        ready: list[tuple[Suspect, str]] = []
        for suspect in suspects(view, keep=keep, statefulset=self.statefulset,
                                answering=answering, remembered=self._ordinals):
            name = self._label(suspect)
            silent = now - self._silent_since[suspect.member.id]
            if silent < self.after_seconds:
                waiting[name] = (f"silent for {silent:.0f} s of the {self.after_seconds:g} s "
                                 "the repair waits")
                continue
            pod = pod_name(self.statefulset, suspect.ordinal)
            if suspect.now_as is not None:
                ready.append((suspect, f"an old identity of {pod}, which answers as member "
                                       f"{suspect.now_as} now (its volume lost?); silent "
                                       f"for {silent:.0f} s"))
                continue
            try:
                problem = pod_problem(await self.pods.pod(pod), self.wall_clock())
            except KubeError as exc:
                waiting[name] = f"cannot read pod {pod} ({exc.message})"
                continue
            if problem is None:
                waiting[name] = f"pod {pod} may still run it: its own leave removes it"
                continue
            ready.append((suspect, f"ordinal {suspect.ordinal} is outside the kept "
                                   f"ordinals {keep.start}..{keep.stop - 1}, {problem}, "
                                   f"and it has not answered for {silent:.0f} s"))
        self.metrics.repair_waiting.set(len(waiting) + len(ready))
        if not ready:
            await self._settle(waiting=waiting, blocked=None)
            return None
        suspect, reason = ready[0]
        label = self._label(suspect)
        obstacle = quorum_for_removal(view, suspect.member.id, answering)
        leader = view.leader
        if obstacle is None and (leader is None or not leader.api_url):
            obstacle = "this node's API address is not in the configuration"
        if obstacle is not None:
            await self._settle(waiting=waiting, blocked=f"not removing {label}: {obstacle}")
            return None
        assert leader is not None and leader.api_url is not None
        await self._settle(waiting=waiting, blocked=None)
        return await self._remove(suspect.member, label, reason, leader.api_url)

    def _label(self, suspect: Suspect) -> str:
        """The member's name where the store gives one that places it, else its id and
        the pod it was once."""
        member = suspect.member
        if suspect.now_as is None and member_ordinal(member, self.statefulset) is not None:
            return member.name or member.id
        return f"{member.id} (once {pod_name(self.statefulset, suspect.ordinal)})"

    def _remember(self, view: ClusterView) -> None:
        """Which pod each member belonged to, while the store could say (every sidecar
        reads the leader's view each poll, so a new leader knows it too)."""
        for member in view.members:
            ordinal = member_ordinal(member, self.statefulset)
            if ordinal is not None:
                self._ordinals[member.id] = ordinal
        if len(self._ordinals) > 4 * len(view.members) + 16:  # bounded: drop the gone
            listed = {m.id for m in view.members}
            self._ordinals = {k: v for k, v in self._ordinals.items() if k in listed}

    async def _remove(self, member: Member, name: str, reason: str,
                      leader_url: str) -> str | None:
        log.info("repair_removing", member=name, id=member.id, reason=reason)
        try:
            await self.backend.remove(member.id, leader_url=leader_url)
        except BackendError as exc:
            self._failed(name, f"the store refused: {exc.message}")
            return None
        except AgentError as exc:
            self._failed(name, exc.message)
            return None
        give_up = self.clock() + CONFIRM_SECONDS
        while True:
            try:
                view = await self.membership.view_at(None)
                if view.leads and view.member(member.id) is None:
                    break
            except AgentError:
                pass
            if self.clock() >= give_up:
                self._failed(name, f"not gone from the leader's view after "
                                   f"{CONFIRM_SECONDS:g} s")
                return None
            await self.sleep(0.2)
        self._silent_since.pop(member.id, None)
        self.state.removed = [*self.state.removed[-19:], name]  # the last 20
        self.metrics.repairs.labels(result="removed").inc()
        message = f"removed {name} (id {member.id}): {reason}"
        log.info("repair_removed", member=name, id=member.id, reason=reason)
        await self._event("StaleMemberRemoved", message)
        return name

    def _failed(self, name: str, why: str) -> None:
        self.metrics.repairs.labels(result="failed").inc()
        self.state.blocked = f"removing {name} failed: {why}"
        log.warning("repair_failed", member=name, error=why)

    async def _settle(self, *, waiting: Mapping[str, str], blocked: str | None) -> None:
        """Record the pass's findings; say each new blocker once (log and a Warning
        Event), and each new wait in the log."""
        self.state.waiting = dict(waiting)
        self.state.blocked = blocked
        said = blocked or ("; ".join(f"{k}: {v}" for k, v in sorted(waiting.items())
                                     if not v.startswith("silent for")) or None)
        if said is not None and said != self._said:
            log.info("repair_waiting", reason=said)
            if blocked is not None:
                await self._event("MemberRepairBlocked", blocked, warning=True)
        self._said = said

    async def _event(self, reason: str, message: str, *, warning: bool = False) -> None:
        """Post an Event on this pod (bounded by the API timeout; never raises): the pass
        runs in a task of its own, so nothing waits on it but the next pass."""
        if self.events is not None:
            await self.events.event(reason=reason, message=message, warning=warning)
