"""Leaving a Reconfigurable (raft) store: hand off, guard quorum, remove via the leader, confirm."""

from __future__ import annotations

import asyncio

import structlog

from agent.errors import AgentError, BackendError, BackendUnavailable, RemovalDenied
from agent.model import ClusterView, Outcome
from agent.quorum import quorum_for_removal, successor
from agent.storekit.capabilities import LeaveContext, Reconfigurable

log = structlog.get_logger("agent.leave")

# How long a restarting leader spends handing off before it lets the store stop anyway.
HAND_OFF_SECONDS = 5.0


class RaftDeparture:
    """A raft member's departure: removed from the configuration through the leader,
    after the quorum guard, leadership handed off first; confirmed on another member.
    On a restart a leader hands off too, so the cluster sits out no election."""

    removed_event = "MemberRemoved"

    def __init__(self, backend: Reconfigurable) -> None:
        self.backend = backend
        self._no_hand_off = False  # the store denied a hand-off for good: remove leading

    async def before_restart(self, leave: LeaveContext) -> str | None:
        """A leader that stops but stays a member hands leadership to a reachable voter
        first, so the cluster does not sit out an election while it restarts (Consul's
        servers do not do this themselves). Best effort, bounded; the target's id."""
        if not self.backend.can_transfer:
            return None
        try:
            async with asyncio.timeout(min(HAND_OFF_SECONDS, leave.deadline_seconds / 2)):
                snapshot = await leave.membership.poll_once()
                view, self_id = snapshot.authority, snapshot.self_id
                if view is None or self_id is None or view.leader_id != self_id:
                    return None
                leader = view.leader
                started: dict[str, float | None] = {}
                target = successor(view, self_id, await leave.reachable(view, started=started),
                                   leave.departing(view, self_id), started=started)
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

    async def remove(self, leave: LeaveContext) -> str:
        removed = False
        while True:
            snapshot = await leave.membership.poll_once()
            self_id, view = snapshot.self_id, snapshot.authority
            if self_id is None:
                await leave.obstacle("this node's id is unknown (its store never answered)")
                continue
            if view is None:
                await leave.obstacle("no leader to ask")
                continue
            if view.member(self_id) is None:
                confirmed_by = await self._confirm_gone(leave, view, self_id)
                if confirmed_by is not None:
                    what = "removed" if removed else "already not a member"
                    return f"{self_id} {what}; confirmed by {confirmed_by}"
                await leave.obstacle("removal not yet visible on another member")
                continue
            leader = view.leader
            if leader is None or not leader.api_url:
                await leave.obstacle("leader has no API address")
                continue
            started: dict[str, float | None] = {}
            reachable = await leave.reachable(view, started=started)
            obstacle = quorum_for_removal(view, self_id, reachable,
                                          leave.departing(view, self_id))
            if obstacle is not None:
                await leave.obstacle(obstacle)
                continue
            if leader.id == self_id and self.backend.can_transfer and not self._no_hand_off:
                target = successor(view, self_id, reachable, leave.departing(view, self_id),
                                   started=started)
                if target is not None:
                    try:
                        await self.backend.transfer_leadership(leader_url=leader.api_url,
                                                               target_id=target.id)
                        log.info("leadership_handed_off", to=target.id)
                        continue
                    except BackendUnavailable as exc:
                        await leave.obstacle(f"hand-off to {target.id} refused: {exc.message}")
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
                await leave.obstacle(exc.message)
            except BackendError as exc:
                raise RemovalDenied(exc.message) from None

    async def _confirm_gone(self, leave: LeaveContext, view: ClusterView,
                            self_id: str) -> str | None:
        """Read membership from a member other than this one; its name if self is absent."""
        others = sorted((m for m in view.members if m.id != self_id and m.api_url),
                        key=lambda m: m.id != view.leader_id)
        for member in others:
            try:
                other = await leave.membership.view_at(member.api_url)
            except AgentError:
                continue
            if other.member(self_id) is None:
                return member.name or member.id
        return None

    async def settle(self, leave: LeaveContext, removed: Outcome) -> Outcome:
        return removed  # confirmed by remove() already
