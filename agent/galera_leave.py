"""Galera's leave: a member leaves by its own clean stop, one at a time, confirmed on a peer."""

from __future__ import annotations

import asyncio

import structlog

from agent.errors import AgentError
from agent.leave import Leaver, Outcome
from agent.model import ClusterView

log = structlog.get_logger("agent.leave")


class GaleraLeaver(Leaver):
    """The same decision as a raft store's (scale-down or restart, from the API), then:

    - its turn: a clean stop sends Galera's leave and the group recomputes quorum on the
      smaller view, but pods scaled down together (podManagementPolicy Parallel stops
      them at once) go one at a time, highest ordinal first, so the component that
      stays is Primary at every step. The store container's preStop (GET /leave/wait)
      holds mariadbd's SIGTERM until then;
    - the clean stop is the removal; once the sidecar's own SIGTERM comes (the store is
      stopping), it confirms on a peer that the view no longer has this node.
    """

    removed_event = "MemberLeaving"

    _last_view: ClusterView | None = None
    _self_id: str | None = None

    async def _remove_self(self) -> str:
        assert self.ordinal is not None
        start = self._keep.start if self._keep is not None else 0
        position = self.ordinal - start + 1  # members up to this one, ordinals contiguous
        while True:
            snapshot = await self.membership.poll_once()
            view = snapshot.local or snapshot.authority
            if view is None:
                await self._obstacle("no member answers: cannot tell whose turn it is")
                continue
            self._last_view, self._self_id = view, snapshot.self_id
            above = len(view.members) - position
            if above <= 0:
                return (f"ordinal {self.ordinal}'s turn ({len(view.members)} in the view, "
                        "none above it): mariadbd's clean stop is the leave")
            await self._obstacle(f"{above} member(s) above ordinal {self.ordinal} leave "
                                 "first (one at a time, so the rest stays Primary)")

    async def leave(self, *, final: bool = False) -> Outcome:
        outcome = await super().leave(final=final)
        if final and outcome.result == "removed":
            outcome = await self._confirm(outcome)
        return outcome

    async def _confirm(self, released: Outcome) -> Outcome:
        """Wait, within the leave's deadline, until a peer's view no longer lists this
        node (mariadbd is stopping: the sidecar's SIGTERM follows the store's preStop)."""
        view, self_id = self._last_view, self._self_id
        peers = [m for m in (view.members if view else ()) if m.id != self_id]
        started = self.clock()
        left = max(1.0, self.deadline_seconds - released.took_seconds)
        confirmed = None
        try:
            async with asyncio.timeout(left):
                while confirmed is None:
                    for peer in peers:
                        try:
                            other = await self.membership.view_at(f"mysql://{peer.address}")
                        except AgentError:
                            continue
                        if self_id is not None and other.member(self_id) is None:
                            confirmed = (peer.address, len(other.members))
                            break
                    if confirmed is None:
                        await self._obstacle("this node still in its peers' view")
        except TimeoutError:
            pass
        took = released.took_seconds + self.clock() - started
        if confirmed is None:
            outcome = Outcome("failed", f"{released.reason}; not confirmed: no peer's view "
                                        f"dropped {self_id} within {left:.1f}s", took)
            self._record("MemberRemoveFailed", outcome.reason, warning=True)
        else:
            outcome = Outcome("removed", f"{self_id} left; confirmed by {confirmed[0]} "
                                         f"(a view of {confirmed[1]})", took)
            self._record("MemberRemoved", outcome.reason)
        log.info("leave_confirmed" if confirmed else "leave_unconfirmed", **outcome.as_dict())
        self.outcome = outcome
        return outcome
