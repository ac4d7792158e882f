"""rqlite init work: find the leader, plan this node's start, drop stale entries first."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import httpx
import structlog

from agent.addresses import host_port
from agent.config.settings import Settings
from agent.discovery import Peer, ServiceNames
from agent.errors import AgentError, BackendError
from agent.identity import PodIdentity
from agent.model import ClusterView
from agent.quorum import quorum_for_add
from agent.retry import Done, Pending, poll
from agent.stores.base import Rediscover
from agent.stores.prestart import PrestartBase
from agent.stores.rqlite.api import RqliteBackend
from agent.stores.rqlite.plan import RqlitePlan, plan_start
from agent.survey import Leader, answering, leader_through, try_view

log = structlog.get_logger("agent.rqlite")


class RqlitePrestart(PrestartBase):
    """Everything ``sts-agent init`` does for rqlite before rqlited starts."""

    store = "rqlite"

    def __init__(self, settings: Settings, names: ServiceNames, pod: PodIdentity,
                 client: httpx.AsyncClient) -> None:
        super().__init__(settings, names, pod)
        self.backend = RqliteBackend(client, "http://unused")
        self.node_id = settings.node_id or pod.name

    def _peer_urls(self, peers: Sequence[Peer]) -> list[str]:
        urls = []
        for peer in peers:
            host = self.host(peer.ordinal, peers)
            if peer.ordinal != self.pod.ordinal and host is not None:
                urls.append(self.url(host, self.client_port))
        return urls

    async def leader_view(self, peers: Sequence[Peer]) -> Leader | None:
        """The leader's own view, found through the peers (this pod excluded)."""
        found = await leader_through(self.backend.view, self._peer_urls(peers))
        return found if isinstance(found, Leader) else None

    async def formed_peer(self, peers: Sequence[Peer]) -> str | None:
        """A peer that answers with raft state (a configuration, a commit), if any: proof
        that a cluster exists even when none of them knows a leader. A node that waits
        for its bootstrap peers answers with neither."""
        urls = self._peer_urls(peers)
        views = await asyncio.gather(*(try_view(self.backend.view, url) for url in urls))
        for url, view in zip(urls, views, strict=True):
            if isinstance(view, ClusterView) and (view.members or view.commit_index):
                return url
        return None

    async def prepare(self, peers: Sequence[Peer], *, deadline: float,
                      rediscover: Rediscover) -> dict[str, Any]:
        """Plan, remove stale entries, wait until a join can commit; template variables."""
        own = self.host(self.pod.ordinal, peers)
        if own is None:
            raise BackendError("rqlite: this pod's own address is unknown (POD_IP unset?)")
        raft_address = host_port(own, self.peer_port)
        data_dir = self.settings.data_dir
        has_state = data_dir is not None and (data_dir / "raft.db").exists()
        current = list(peers)

        async def attempt() -> Done[RqlitePlan] | Pending:
            nonlocal current
            found = await self.leader_view(current)
            formed = None if found or has_state else await self.formed_peer(current)
            plan = plan_start(
                node_id=self.node_id, raft_address=raft_address,
                members=found.view.members if found else None, has_state=has_state,
                bootstrap_member=self.pod.ordinal in self.settings.bootstrap_ordinals(),
                formed_at=formed)
            if plan.state == "wait":
                current = await rediscover()
                return Pending(plan.reason)
            if found is None:
                return Done(plan)
            view, leader_url = found.view, found.url
            for stale in plan.remove:
                try:
                    await self.backend.remove(stale, leader_url=leader_url)
                except AgentError as exc:
                    return Pending(f"removing stale entry {stale}: {exc.message}")
                log.warning("rqlite_stale_entry_removed", member=stale, reason=plan.reason)
            if plan.state == "join":
                members = [m for m in view.members if m.id not in plan.remove]
                obstacle = quorum_for_add(members, await answering(self.backend.view, members))
                if obstacle is not None:
                    return Pending(obstacle)
            return Done(plan)

        plan = await poll(attempt, what="an rqlite cluster this node can start into",
                          timeout_seconds=max(0.0, deadline - time.monotonic()))
        log.info("rqlite_plan", state=plan.state, reason=plan.reason, node_id=self.node_id,
                 removed=list(plan.remove))
        join = []
        for ordinal in sorted({*self.settings.bootstrap_ordinals(),
                               *(p.ordinal for p in current)}):
            host = self.host(ordinal, current)
            if ordinal != self.pod.ordinal and host is not None:
                join.append(host_port(host, self.peer_port))
        return {
            "rqlite_node_id": self.node_id,
            "rqlite_state": plan.state,
            "rqlite_raft_address": raft_address,
            "rqlite_http_address": host_port(own, self.client_port),
            "rqlite_join": ",".join(join),
            "rqlite_bootstrap_expect": self.settings.bootstrap_expect,
        }
