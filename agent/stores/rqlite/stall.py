"""A restarted follower the leader does not send to: leadership moved, replication anew."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import structlog

from agent.errors import AgentError

if TYPE_CHECKING:
    from agent.leave import Events
    from agent.model import Member, Snapshot

log = structlog.get_logger("agent.rqlite")

Transfer = Callable[..., Awaitable[None]]  # transfer_leadership(leader_url=, target_id=)


class StalledFollower:
    """Watches for the one wait a restarted rqlite node cannot end by itself: the leader
    (hashicorp/raft) keeps one replication and one heartbeat goroutine per follower; a
    dial to the pod's address as it was a moment ago (its network gone, its DNS name not
    yet moved) hangs for rqlite's connection timeout, 10 s, and failures back off up to
    10.24 s. The follower is back and the leader does not send to it.

    When this node is a voter that has applied nothing for ``after_seconds`` while it
    lags the leader by more than ``max_lag`` entries, the leader is asked to hand
    leadership to another voter (hashicorp/raft's transfer: the target is brought up to
    date, then told to start its election at once; writes wait for it): the new leader
    starts replication to every follower afresh, this one included. A node receiving a
    snapshot applies nothing either until it is in (the window must be longer than that
    takes, or the transfer starts over from the new leader). Once per stall: the
    streak ends only when the node has caught up; a node the hand-off did not help is
    logged, never moved again. No membership changes, nothing committed is at risk."""

    def __init__(self, transfer: Transfer, *, after_seconds: float, max_lag: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.transfer = transfer
        self.after_seconds = after_seconds
        self.max_lag = max_lag
        self.clock = clock
        self.applied: int | None = None  # the applied index the streak began at
        self.since: float | None = None
        self.handed_off = False  # in this streak
        self.hand_offs = 0

    def _reset(self) -> None:
        self.applied, self.since, self.handed_off = None, None, False

    async def on_poll(self, snapshot: Snapshot, events: Events | None) -> None:
        """One poll's look: count how long the node has applied nothing, act once."""
        local, authority, self_id = snapshot.local, snapshot.authority, snapshot.self_id
        lag = snapshot.lag
        if (local is None or authority is None or self_id is None or lag is None
                or snapshot.local_error is not None or lag <= self.max_lag):
            self._reset()  # not answering, no leader to measure by, or caught up
            return
        me, leader = authority.member(self_id), authority.leader
        if me is None or not me.voter or leader is None or leader.id == self_id:
            self._reset()  # joining (not ours to hurry) or leading
            return
        now = self.clock()
        if self.since is None or local.applied_index != self.applied:
            self.applied, self.since = local.applied_index, now  # it moves: replication runs
            return
        if self.handed_off or now - self.since < self.after_seconds:
            return
        self.handed_off = True
        waited = round(now - self.since, 1)
        target = successor(authority.members, self_id=self_id, leader_id=leader.id)
        if target is None or not leader.api_url:
            log.info("rqlite_stall_left", waited_seconds=waited, lag=lag,
                     reason="no other reachable voter to lead" if target is None
                     else "the leader's API address is unknown")
            return
        try:
            await self.transfer(leader_url=leader.api_url, target_id=target.id)
        except AgentError as exc:
            log.warning("rqlite_stall_hand_off_failed", error=exc.message, to=target.id)
            return
        self.hand_offs += 1
        message = (f"the leader {leader.id} sent nothing to this node for {waited} s while "
                   f"it lagged by {lag} entries: leadership handed to {target.id}, whose "
                   "replication starts afresh")
        log.info("rqlite_stall_hand_off", to=target.id, former=leader.id,
                 waited_seconds=waited, lag=lag)
        if events is not None:
            await events.event(reason="LeadershipMovedForCatchUp", message=message)


def successor(members: tuple[Member, ...], *, self_id: str, leader_id: str) -> Member | None:
    """The voter to lead instead: neither this node nor the leader, not known to be
    unreachable; the lowest id, so every sidecar would pick the same."""
    return next((m for m in sorted(members, key=lambda m: m.id)
                 if m.voter and m.id not in (self_id, leader_id) and m.reachable is not False),
                None)
