"""Graceful leave: decide (scale-down or restart), then the store's departure, bounded."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Protocol

import structlog

from agent.errors import KubeError, RemovalDenied
from agent.identity import ordinal_of_member
from agent.membership import Membership
from agent.model import ClusterView, Outcome
from agent.storekit.capabilities import Departure
from agent.survey import progress

__all__ = ["Decision", "Events", "Leaver", "Outcome", "RemovalDenied", "Replicas", "decide"]

log = structlog.get_logger("agent.leave")


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
    """Runs the leave procedure once; every trigger (POST /leave, SIGTERM) shares it. The
    decision and its deadline are the same for every store; what leaving means is the
    store's ``departure``, which sees this object as its ``LeaveContext``."""

    def __init__(
        self,
        membership: Membership,
        departure: Departure,
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
        self._membership = membership
        self.departure = departure
        self.policy = policy
        self.ordinal = ordinal
        self.statefulset = statefulset
        self.replicas = replicas
        self.events = events
        self._deadline_seconds = deadline_seconds
        self.deadline_problem = deadline_problem  # Settings.leave_time_problem()
        self.retry_seconds = retry_seconds
        self._clock = clock
        self.sleep = sleep
        self.outcome: Outcome | None = None
        self._task: asyncio.Task[Outcome] | None = None
        self._events: set[asyncio.Task[None]] = set()
        self._keep: range | None = None
        self._last_obstacle = "not started"
        self._settled = False  # the departure's settle() ran

    # --- the LeaveContext a departure sees ---------------------------------------------
    @property
    def membership(self) -> Membership:
        return self._membership

    @property
    def keep(self) -> range | None:
        return self._keep

    @property
    def deadline_seconds(self) -> float:
        return self._deadline_seconds

    def clock(self) -> float:
        return self._clock()

    # --- the procedure -------------------------------------------------------------

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
        if final and outcome.result == "removed":
            if not self._settled:
                # The pod's end (its sidecar's SIGTERM): the departure may confirm.
                self._settled = True
                self.outcome = await self.departure.settle(self, outcome)
            outcome = self.outcome or outcome
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
                self.record("LeaveSkipped", decision.reason, warning=True)
            reason = decision.reason
            handed_to = await self.departure.before_restart(self)
            if handed_to is not None:
                reason += f"; leadership handed to {handed_to}"
            self.outcome = Outcome("stayed", reason, self.clock() - started)
            return self.outcome
        if self.deadline_problem is not None:
            log.warning("grace_period_too_short", problem=self.deadline_problem)
        try:
            async with asyncio.timeout(self.deadline_seconds - (self.clock() - started)):
                reason = await self.departure.remove(self)
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
            self.record(self.departure.removed_event, self.outcome.reason)
        else:
            self.record("MemberRemoveFailed", self.outcome.reason, warning=True)
        return self.outcome

    def record(self, reason: str, message: str, *, warning: bool = False) -> None:
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

    def departing(self, view: ClusterView, self_id: str) -> set[str]:
        """Other members whose pods the StatefulSet no longer keeps."""
        if self._keep is None:
            return set()
        departing = set()
        for member in view.members:
            ordinal = ordinal_of_member(member.name or member.id, self.statefulset)
            if member.id != self_id and ordinal is not None and ordinal not in self._keep:
                departing.add(member.id)
        return departing

    async def obstacle(self, reason: str) -> None:
        if reason != self._last_obstacle:
            log.info("leave_waiting", reason=reason)
        self._last_obstacle = reason
        # Jitter, so two pods leaving at once do not retry in lockstep.
        await self.sleep(self.retry_seconds * random.uniform(0.5, 1.5))

    async def reachable(self, view: ClusterView, *,
                        started: dict[str, float | None] | None = None
                        ) -> dict[str, int | None]:
        """The members that answer now, with the raft index each has applied (and into
        ``started`` when each one's store started, where it says). One the store vouches
        for is asked too, where its API is known: a store's own word lags (Consul's
        autopilot counts a server healthy for seconds after it stopped), and the guard
        must not count a member that just died."""
        members = [replace(m, reachable=None) if m.reachable and m.api_url else m
                   for m in view.members]
        return await progress(self.membership.view_at, members, started=started)
