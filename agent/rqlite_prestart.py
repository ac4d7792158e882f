"""rqlite init work: find the leader, plan this node's start, drop stale entries first."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import httpx
import structlog

from agent.backends.base import ClusterView
from agent.backends.rqlite import RqliteBackend
from agent.config import Settings, host_port
from agent.discovery import Peer, ServiceNames
from agent.errors import AgentError, BackendError
from agent.identity import PodIdentity
from agent.prestart import Prestart
from agent.quorum import quorum_for_add
from agent.retry import Done, Pending, poll
from agent.rqlite_join import RqlitePlan, plan_rqlite

log = structlog.get_logger("agent.rqlite")


class RqlitePrestart(Prestart):
    """Everything ``sts-agent init`` does for rqlite before rqlited starts."""

    def __init__(self, settings: Settings, names: ServiceNames, pod: PodIdentity,
                 client: httpx.AsyncClient) -> None:
        super().__init__(settings, names, pod)
        self.backend = RqliteBackend(client, "http://unused")
        self.raft_port = settings.effective_peer_port() or 4002
        self.api_port = settings.effective_client_port() or 4001
        self.node_id = settings.node_id or pod.name

    async def leader_view(self, peers: Sequence[Peer]) -> tuple[ClusterView, str] | None:
        """The leader's own view and API URL, found through the first peer that knows it."""
        for peer in peers:
            if peer.ordinal == self.pod.ordinal:
                continue
            host = self.host(peer.ordinal, peers)
            if host is None:
                continue
            url = self.url(host, self.api_port)
            try:
                view = await self.backend.view(url)
                leader = view.leader
                if leader is None:
                    continue
                if view.self_id != leader.id:
                    if not leader.api_url:
                        continue
                    url = leader.api_url
                    view = await self.backend.view(url)
                    if view.self_id != view.leader_id:
                        continue  # leadership moved meanwhile; the next attempt finds it
            except AgentError:
                continue
            return view, url
        return None

    async def prepare(self, peers: Sequence[Peer], *, deadline: float,
                      rediscover: Callable[[], Awaitable[list[Peer]]]) -> dict[str, Any]:
        """Plan, remove stale entries, wait until a join can commit; template variables."""
        own = self.host(self.pod.ordinal, peers)
        if own is None:
            raise BackendError("rqlite: this pod's own address is unknown (POD_IP unset?)")
        raft_address = host_port(own, self.raft_port)
        data_dir = self.settings.data_dir
        has_state = data_dir is not None and (data_dir / "raft.db").exists()
        current = list(peers)

        async def attempt() -> Done[RqlitePlan] | Pending:
            nonlocal current
            found = await self.leader_view(current)
            plan = plan_rqlite(
                node_id=self.node_id, raft_address=raft_address,
                members=found[0].members if found else None, has_state=has_state,
                bootstrap_member=self.pod.ordinal < self.settings.bootstrap_expect)
            if plan.state == "wait":
                current = await rediscover()
                return Pending(plan.reason)
            if found is None:
                return Done(plan)
            view, leader_url = found
            for stale in plan.remove:
                try:
                    await self.backend.remove(stale, leader_url=leader_url)
                except AgentError as exc:
                    return Pending(f"removing stale entry {stale}: {exc.message}")
                log.warning("rqlite_stale_entry_removed", member=stale, reason=plan.reason)
            if plan.state == "join":
                members = [m for m in view.members if m.id not in plan.remove]
                answering = {m.id for m in members if m.reachable is not False}
                obstacle = quorum_for_add(members, answering)
                if obstacle is not None:
                    return Pending(obstacle)
            return Done(plan)

        plan = await poll(attempt, what="an rqlite cluster this node can start into",
                          timeout_seconds=max(0.0, deadline - time.monotonic()))
        log.info("rqlite_plan", state=plan.state, reason=plan.reason, node_id=self.node_id,
                 removed=list(plan.remove))
        join = []
        for ordinal in sorted({*range(self.settings.bootstrap_expect),
                               *(p.ordinal for p in current)}):
            host = self.host(ordinal, current)
            if ordinal != self.pod.ordinal and host is not None:
                join.append(host_port(host, self.raft_port))
        return {
            "rqlite_node_id": self.node_id,
            "rqlite_state": plan.state,
            "rqlite_raft_address": raft_address,
            "rqlite_http_address": host_port(own, self.api_port),
            "rqlite_join": ",".join(join),
            "rqlite_bootstrap_expect": self.settings.bootstrap_expect,
        }
