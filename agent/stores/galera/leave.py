"""Galera's departure: a member leaves by its own clean stop, one at a time, confirmed on a peer."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from agent.errors import AgentError
from agent.model import ClusterView, Outcome
from agent.storekit.capabilities import LeaveContext

log = structlog.get_logger("agent.leave")


class GaleraDeparture:
    """Once the leave has decided this pod goes (scale-down, from the API):

    - its turn: a clean stop sends Galera's leave and the group recomputes quorum on the
      smaller view, but pods scaled down together (podManagementPolicy Parallel stops
      them at once) go one at a time, highest ordinal first, so the component that
      stays is Primary at every step. The store container's preStop (GET /leave/wait)
      holds mariadbd's SIGTERM until then;
    - the clean stop is the removal; once the sidecar's own SIGTERM comes (the store is
      stopping), ``settle`` confirms on a peer that the view no longer has this node.

    Before either stop, a drain: the pod is unready from the leave's start, and mariadbd
    keeps serving ``drain_seconds`` more while clients' endpoints drop it and the writes
    in flight on it commit (Galera has no leader to hand off).
    """

    removed_event = "MemberLeaving"

    def __init__(self, *, drain_seconds: float = 0.0,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.drain_seconds = drain_seconds
        self.sleep = sleep
        self._last_view: ClusterView | None = None
        self._self_id: str | None = None

    async def before_restart(self, leave: LeaveContext) -> str | None:
        await self.drain(leave, "restart")
        return None

    async def drain(self, leave: LeaveContext, stop: str) -> None:
        """Hold mariadbd's SIGTERM ``drain_seconds`` (at most half the leave's deadline:
        the stop itself needs the rest) while the unready pod's clients move away."""
        seconds = min(self.drain_seconds, leave.deadline_seconds / 2)
        if seconds <= 0:
            return
        log.info("galera_draining", seconds=round(seconds, 2), before=stop,
                 why="clients move to the other members and writes in flight commit")
        await self.sleep(seconds)

    async def remove(self, leave: LeaveContext) -> str:
        assert leave.ordinal is not None
        start = leave.keep.start if leave.keep is not None else 0
        position = leave.ordinal - start + 1  # members up to this one, ordinals contiguous
        while True:
            snapshot = await leave.membership.poll_once()
            view = snapshot.local or snapshot.authority
            if view is None:
                await leave.obstacle("no member answers: cannot tell whose turn it is")
                continue
            self._last_view, self._self_id = view, snapshot.self_id
            above = len(view.members) - position
            if above <= 0:
                await self.drain(leave, "departure")
                return (f"ordinal {leave.ordinal}'s turn ({len(view.members)} in the view, "
                        "none above it): mariadbd's clean stop is the leave")
            await leave.obstacle(f"{above} member(s) above ordinal {leave.ordinal} leave "
                                 "first (one at a time, so the rest stays Primary)")

    async def settle(self, leave: LeaveContext, removed: Outcome) -> Outcome:
        """Wait, within the leave's deadline, until a peer's view no longer lists this
        node (mariadbd is stopping: the sidecar's SIGTERM follows the store's preStop)."""
        view, self_id = self._last_view, self._self_id
        peers = [m for m in (view.members if view else ()) if m.id != self_id]
        started = leave.clock()
        left = max(1.0, leave.deadline_seconds - removed.took_seconds)
        confirmed = None
        try:
            async with asyncio.timeout(left):
                while confirmed is None:
                    for peer in peers:
                        try:
                            other = await leave.membership.view_at(f"mysql://{peer.address}")
                        except AgentError:
                            continue
                        if self_id is not None and other.member(self_id) is None:
                            confirmed = (peer.address, len(other.members))
                            break
                    if confirmed is None:
                        await leave.obstacle("this node still in its peers' view")
        except TimeoutError:
            pass
        took = removed.took_seconds + leave.clock() - started
        if confirmed is None:
            outcome = Outcome("failed", f"{removed.reason}; not confirmed: no peer's view "
                                        f"dropped {self_id} within {left:.1f}s", took)
            leave.record("MemberRemoveFailed", outcome.reason, warning=True)
        else:
            outcome = Outcome("removed", f"{self_id} left; confirmed by {confirmed[0]} "
                                         f"(a view of {confirmed[1]})", took)
            leave.record("MemberRemoved", outcome.reason)
        log.info("leave_confirmed" if confirmed else "leave_unconfirmed", **outcome.as_dict())
        return outcome
