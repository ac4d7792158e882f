"""Graceful leave: decide (scale-down or restart), guard quorum, hand off, remove, confirm."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Literal, Protocol

import structlog

from agent.errors import AgentError, BackendError, BackendUnavailable, KubeError
from agent.identity import ordinal_of_member
from agent.membership import Membership
from agent.model import ClusterView
from agent.quorum import quorum_for_removal, successor
from agent.storekit.capabilities import Reconfigurable
from agent.survey import progress

log = structlog.get_logger("agent.leave")

Result = Literal["removed", "stayed", "failed"]
# How long a restarting leader spends handing off before it lets the store stop anyway.
HAND_OFF_SECONDS = 5.0


class RemovalDenied(AgentError):
    """The store refused the removal for good (no permission): retrying cannot help."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a leave ended. ``stayed``: the pod is not going away for good."""

    result: Result
    reason: str
    took_seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {"result": self.result, "reason": self.reason,
                "took_seconds": round(self.took_seconds, 3)}


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether this pod leaves, and why; ``unknown`` when the API could not tell."""

    leave: bool
    reason: str
    # The ordinals the StatefulSet keeps, when known: [start, start + replicas).
    keep: range | None = None
    unknown: bool = False  # the StatefulSet could not be read: staying, as for a restart


class Replicas(Protocol):
    """Where the StatefulSet's desired size comes from (the Kubernetes API)."""

    async def statefulset_scale(self, name: str) -> tuple[int, int]:
        """(spec.replicas, spec.ordinals.start)."""
        ...


class Events(Protocol):
    async def event(self, *, reason: str, message: str, warning: bool = False) -> None: ...


async def decide(policy: str, *, ordinal: int, statefulset: str | None,
                 replicas: Replicas | None, retry_seconds: float = 0.0,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 clock: Callable[[], float] = time.monotonic) -> Decision:
    """Leave only when the pod goes away for good. Any doubt means stay: a restart is
    the common case, and removing a restarting node costs a rejoin (or crash-loops).

    A transient API failure (timeout, 5xx) is retried for ``retry_seconds``.
    """
    if policy == "never":
        return Decision(False, "leave policy is 'never'")
    if policy == "always":
        return Decision(True, "leave policy is 'always'")
    if replicas is None or statefulset is None:
        return Decision(False, "no Kubernetes API configured: cannot tell scale-down from "
                               "restart, staying")
    give_up = clock() + retry_seconds
    while True:
        try:
            desired, start = await replicas.statefulset_scale(statefulset)
            break
        except KubeError as exc:
            if exc.not_found:
                # Deleted (`helm uninstall`, `kubectl delete statefulset`): not a
                # scale-down. Its claims stay, and a StatefulSet made again finds its
                # members in them; nothing is in doubt, so no warning.
                return Decision(False, f"StatefulSet {statefulset} is gone (deleted, "
                                       "not scaled down): keeping membership for when "
                                       "it is made again with its volumes")
            if not exc.retryable or clock() >= give_up:
                return Decision(False, f"cannot read StatefulSet {statefulset} "
                                       f"({exc.message}); staying, as for a restart",
                                unknown=True)
            await sleep(min(0.5, max(0.0, give_up - clock())))
    keep = range(start, start + desired)
    if desired == 0:
        # Scale to zero parks the whole cluster; its volumes stay and it comes back
        # with them, so nobody leaves (the last voter could not anyway).
        return Decision(False, "scale to zero: keeping membership for the way back", keep)
    if ordinal not in keep:
        return Decision(True, f"scale-down: ordinal {ordinal} is outside the kept "
                              f"ordinals {start}..{start + desired - 1}", keep)
    return Decision(False, f"not a scale-down: ordinal {ordinal} is kept (spec.replicas "
                           f"{desired}; restart, eviction or rolling update)", keep)


class Leaver:
    """Runs the leave procedure once; every trigger (POST /leave, SIGTERM) shares it."""

    removed_event = "MemberRemoved"  # the Event once the removal is done

    def __init__(
        self,
        membership: Membership,
        backend: Reconfigurable,
        *,
        policy: str,
        ordinal: int | None,
        statefulset: str | None,
        replicas: Replicas | None,
        events: Events | None,
        deadline_seconds: float,
        deadline_problem: str | None = None,
        retry_seconds: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.membership = membership
        self.backend = backend
        self.policy = policy
        self.ordinal = ordinal
        self.statefulset = statefulset
        self.replicas = replicas
        self.events = events
        self.deadline_seconds = deadline_seconds
        self.deadline_problem = deadline_problem  # Settings.leave_time_problem()
        self.retry_seconds = retry_seconds
        self.clock = clock
        self.sleep = sleep
        self.outcome: Outcome | None = None
        self._task: asyncio.Task[Outcome] | None = None
        self._events: set[asyncio.Task[None]] = set()

    async def leave(self, *, final: bool = False) -> Outcome:
        """Start the procedure (or join the one running) and return its outcome.

        A "stayed" outcome is undone when the trigger was not ``final`` (a preStop of
        the main container, which may just be restarting): readiness comes back and the
        next trigger decides afresh. SIGTERM to the sidecar itself is ``final``.
        """
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="leave")
        task = self._task
        outcome = await asyncio.shield(task)
        if outcome.result == "stayed" and not final and self._task is task:
            self._task = None
            self.membership.clear_leaving()
        return outcome

    async def leave_after(self, *, window: float) -> Outcome:
        """Join the leave in flight, or start it when none has started within ``window``
        seconds: the store container's preStop, which the kubelet runs at the same moment
        as the agent's own. Whichever arrives first starts the procedure, so the store's
        SIGTERM never cuts a removal that the agent's preStop (a process start under the
        agent's CPU limit) was too slow to begin. What to do still comes from the
        Kubernetes API, never from the caller."""
        end = self.clock() + window
        while self._task is None and self.clock() < end:
            await self.sleep(0.05)  # the agent's own preStop usually starts it
        return await self.leave()

    async def _run(self) -> Outcome:
        started = self.clock()
        self.membership.set_leaving()
        if self.ordinal is None:
            decision = Decision(self.policy == "always", "pod ordinal unknown (POD_NAME unset)")
        else:
            decision = await decide(self.policy, ordinal=self.ordinal,
                                    statefulset=self.statefulset, replicas=self.replicas,
                                    retry_seconds=self.deadline_seconds / 3,
                                    sleep=self.sleep, clock=self.clock)
        self._keep = decision.keep
        log.info("leave_decision", leave=decision.leave, reason=decision.reason)
        if not decision.leave:
            if decision.unknown:
                self._record("LeaveSkipped", decision.reason, warning=True)
            reason = decision.reason
            handed_to = await self._hand_off_before_restart()
            if handed_to is not None:
                reason += f"; leadership handed to {handed_to}"
            self.outcome = Outcome("stayed", reason, self.clock() - started)
            return self.outcome
        if self.deadline_problem is not None:
            log.warning("grace_period_too_short", problem=self.deadline_problem)
        try:
            async with asyncio.timeout(self.deadline_seconds - (self.clock() - started)):
                reason = await self._remove_self()
            self.outcome = Outcome("removed", reason, self.clock() - started)
        except RemovalDenied as exc:
            self.outcome = Outcome("failed", exc.message, self.clock() - started)
        except TimeoutError:
            short = f" ({self.deadline_problem})" if self.deadline_problem else ""
            self.outcome = Outcome("failed", f"deadline of {self.deadline_seconds:.1f}s passed: "
                                             f"{self._last_obstacle}{short}",
                                   self.clock() - started)
        except Exception as exc:  # reported as an outcome; the pod goes away regardless
            log.exception("leave_crashed")
            self.outcome = Outcome("failed", f"{type(exc).__name__}: {exc}",
                                   self.clock() - started)
        log.info("leave_outcome", **self.outcome.as_dict())
        if self.outcome.result == "removed":
            self._record(self.removed_event, self.outcome.reason)
        else:
            self._record("MemberRemoveFailed", self.outcome.reason, warning=True)
        return self.outcome

    def _record(self, reason: str, message: str, *, warning: bool = False) -> None:
        """Post an Event in the background: the preStop hook need not wait for it."""
        if self.events is None:
            return
        task = asyncio.create_task(self.events.event(reason=reason, message=message,
                                                     warning=warning))
        self._events.add(task)
        task.add_done_callback(self._events.discard)

    async def drain(self) -> None:
        """Wait for Events still being posted (called before the process exits)."""
        if self._events:
            await asyncio.gather(*self._events, return_exceptions=True)

    _last_obstacle = "not started"
    _keep: range | None = None
    _no_hand_off = False  # the store denied a hand-off for good: remove while leading

    def _departing(self, view: ClusterView, self_id: str) -> set[str]:
        """Other members whose pods the StatefulSet no longer keeps."""
        if self._keep is None:
            return set()
        departing = set()
        for member in view.members:
            ordinal = ordinal_of_member(member.name or member.id, self.statefulset)
            if member.id != self_id and ordinal is not None and ordinal not in self._keep:
                departing.add(member.id)
        return departing

    async def _obstacle(self, reason: str) -> None:
        if reason != self._last_obstacle:
            log.info("leave_waiting", reason=reason)
        self._last_obstacle = reason
        # Jitter, so two pods leaving at once do not retry in lockstep.
        await self.sleep(self.retry_seconds * random.uniform(0.5, 1.5))

    async def _reachable(self, view: ClusterView) -> dict[str, int | None]:
        """The members that answer now, with the raft index each has applied. One the
        store vouches for is asked too, where its API is known: a store's own word lags
        (Consul's autopilot counts a server healthy for seconds after it stopped), and
        the guard must not count a member that just died."""
        members = [replace(m, reachable=None) if m.reachable and m.api_url else m
                   for m in view.members]
        return await progress(self.membership.view_at, members)

    async def _hand_off_before_restart(self) -> str | None:
        """A leader that stops but stays a member hands leadership to a reachable voter
        first, so the cluster does not sit out an election while it restarts (Consul's
        servers do not do this themselves). Best effort, bounded; the target's id."""
        if not self.backend.can_transfer:
            return None
        try:
            async with asyncio.timeout(min(HAND_OFF_SECONDS, self.deadline_seconds / 2)):
                snapshot = await self.membership.poll_once()
                view, self_id = snapshot.authority, snapshot.self_id
                if view is None or self_id is None or view.leader_id != self_id:
                    return None
                leader = view.leader
                target = successor(view, self_id, await self._reachable(view),
                                   self._departing(view, self_id))
                if target is None or leader is None or not leader.api_url:
                    log.info("hand_off_skipped", reason="no reachable voter to lead")
                    return None
                await self.backend.transfer_leadership(leader_url=leader.api_url,
                                                       target_id=target.id)
        except TimeoutError:
            log.warning("hand_off_failed", error="timed out")
            return None
        except AgentError as exc:
            log.warning("hand_off_failed", error=exc.message)
            return None
        log.info("leadership_handed_off", to=target.id, reason="restart")
        return target.id

    async def _remove_self(self) -> str:
        removed = False
        while True:
            snapshot = await self.membership.poll_once()
            self_id, view = snapshot.self_id, snapshot.authority
            if self_id is None:
                await self._obstacle("this node's id is unknown (its store never answered)")
                continue
            if view is None:
                await self._obstacle("no leader to ask")
                continue
            if view.member(self_id) is None:
                confirmed_by = await self._confirm_gone(view, self_id)
                if confirmed_by is not None:
                    what = "removed" if removed else "already not a member"
                    return f"{self_id} {what}; confirmed by {confirmed_by}"
                await self._obstacle("removal not yet visible on another member")
                continue
            leader = view.leader
            if leader is None or not leader.api_url:
                await self._obstacle("leader has no API address")
                continue
            reachable = await self._reachable(view)
            obstacle = quorum_for_removal(view, self_id, reachable,
                                          self._departing(view, self_id))
            if obstacle is not None:
                await self._obstacle(obstacle)
                continue
            if leader.id == self_id and self.backend.can_transfer and not self._no_hand_off:
                target = successor(view, self_id, reachable, self._departing(view, self_id))
                if target is not None:
                    try:
                        await self.backend.transfer_leadership(leader_url=leader.api_url,
                                                               target_id=target.id)
                        log.info("leadership_handed_off", to=target.id)
                        continue
                    except BackendUnavailable as exc:
                        await self._obstacle(f"hand-off to {target.id} refused: {exc.message}")
                        continue
                    except BackendError as exc:
                        # Denied for good (a permission, a store too old): remove while
                        # leading, as for a store without hand-off. Raft commits the new
                        # configuration, then the leader steps down; the others elect.
                        self._no_hand_off = True
                        log.warning("hand_off_denied", to=target.id, error=exc.message,
                                    consequence="removing while leading: one election")
            try:
                await self.backend.remove(self_id, leader_url=leader.api_url)
                removed = True
                log.info("member_remove_sent", member=self_id, via=leader.api_url)
            except BackendUnavailable as exc:
                await self._obstacle(exc.message)
            except BackendError as exc:
                raise RemovalDenied(exc.message) from None

    async def _confirm_gone(self, view: ClusterView, self_id: str) -> str | None:
        """Read membership from a member other than this one; its name if self is absent."""
        others = sorted((m for m in view.members if m.id != self_id and m.api_url),
                        key=lambda m: m.id != view.leader_id)
        for member in others:
            try:
                other = await self.membership.view_at(member.api_url)
            except AgentError:
                continue
            if other.member(self_id) is None:
                return member.name or member.id
        return None
