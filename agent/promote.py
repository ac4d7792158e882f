"""Promote this node from learner to voter once it has caught up (stores with learners)."""

from __future__ import annotations

import structlog

from agent.errors import AgentError
from agent.model import Snapshot
from agent.storekit.capabilities import Promotable

log = structlog.get_logger("agent.promote")


class Promoter:
    """Called after every poll; asks the leader to promote us when we are a caught-up
    learner. The store refuses while we lag ("not in sync"): the next poll tries again."""

    def __init__(self, backend: Promotable, *, max_lag_entries: int) -> None:
        self.backend = backend
        self.max_lag_entries = max_lag_entries
        self._last: str | None = None

    async def on_poll(self, snapshot: Snapshot) -> None:
        self_id, authority, local = snapshot.self_id, snapshot.authority, snapshot.local
        if self_id is None or authority is None or local is None:
            return
        me = authority.member(self_id)
        leader = authority.leader
        if me is None or me.voter or leader is None or not leader.api_url:
            return
        if local.applied_index is None or authority.commit_index is None:
            return
        lag = authority.commit_index - local.applied_index
        if lag > self.max_lag_entries:
            self._say("learner_catching_up", lag=lag)
            return
        try:
            await self.backend.promote(self_id, via=leader.api_url)
            log.info("learner_promoted", member=self_id, via=leader.api_url)
        except AgentError as exc:
            self._say("promote_refused", reason=exc.message)

    def _say(self, event: str, **keys: object) -> None:
        text = f"{event}:{sorted(keys.items())}"
        if text != self._last:
            log.info(event, **keys)
            self._last = text
