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
from agent.storekit.capabilities import Rediscover
from agent.storekit.prestart import PrestartBase
from agent.stores.rqlite.api import RqliteBackend
from agent.stores.rqlite.options import RqliteOptions
from agent.stores.rqlite.plan import RqlitePlan, plan_start
from agent.survey import Leader, answering, leader_through, try_view

log = structlog.get_logger("agent.rqlite")

# After a server is removed, a hashicorp/raft leader (v1.7, in rqlite 8) may still send it
# AppendEntries for a while. It stops the server's replication goroutine as it appends the
# removal, but that goroutine does not watch for the stop inside a replicateTo: it ends the
# one it is in (after failures a back-off first, 10 ms doubled per failure up to 10.24 s,
# then the RPC, which rqlite's transport bounds at 10 s), may run one more for a trigger
# already queued (appending the removal notifies every follower, this one too, before the
# stop), and on the stop makes a last best-effort replicateTo, its back-off first. Should
# one of these reach the new rqlited before its boot has joined, the boot sees "a leader"
# and counts itself done without ever joining: a node with no configuration, unready for
# good (seen in CI 0.1 s after a removal; and after a lost node, whose follower had failed
# for a minute, so that every back-off was the longest). So after removing an entry at this
# pod's raft address, init starts rqlited only once the last of them is sent: three
# back-offs and two RPCs after the removal. A rare path: a volume lost or a claim deleted.
RAFT_LONGEST_BACKOFF_SECONDS = 10.24
RQLITE_RAFT_RPC_TIMEOUT_SECONDS = 10.0
LAST_REPLICATION_AFTER_REMOVAL_SECONDS = (
    3 * RAFT_LONGEST_BACKOFF_SECONDS + 2 * RQLITE_RAFT_RPC_TIMEOUT_SECONDS + 1.0)


class RqlitePrestart(PrestartBase):
    """Everything ``sts-agent init`` does for rqlite before rqlited starts."""

    store = "rqlite"

    def __init__(self, settings: Settings, names: ServiceNames, pod: PodIdentity,
                 client: httpx.AsyncClient) -> None:
        super().__init__(settings, names, pod)
        self.backend = RqliteBackend(client, "http://unused")
        self.node_id = settings.options(RqliteOptions).node_id or pod.name

    def _url(self, ordinal: int, peers: Sequence[Peer]) -> str | None:
        host = self.host(ordinal, peers)
        return None if host is None else self.url(host, self.client_port)

    def _peer_urls(self, peers: Sequence[Peer]) -> list[str]:
        return [url for p in peers if p.ordinal != self.pod.ordinal
                and (url := self._url(p.ordinal, peers)) is not None]

    async def leader_view(self, peers: Sequence[Peer]) -> Leader | None:
        """The leader's own view, found through the peers (this pod excluded)."""
        found = await leader_through(self.backend.view, self._peer_urls(peers))
        return found if isinstance(found, Leader) else None

    async def store_states(self, peers: Sequence[Peer]) -> dict[int, tuple[str, bool]]:
        """The peers whose rqlited answers: ordinal -> (its URL, whether it has raft state:
        a configuration or a commit). Raft state proves a cluster exists even when no
        peer knows a leader; a node waiting for its bootstrap peers answers with neither."""
        asked = [(p.ordinal, url) for p in peers if p.ordinal != self.pod.ordinal
                 and (url := self._url(p.ordinal, peers)) is not None]
        views = await asyncio.gather(*(try_view(self.backend.view, url) for _, url in asked))
        return {ordinal: (url, bool(view.members or view.commit_index))
                for (ordinal, url), view in zip(asked, views, strict=True)
                if isinstance(view, ClusterView)}

    async def uncommitted(self, leader_url: str) -> str | None:
        """Why the leader's configuration cannot be trusted yet (see the API's), or None;
        an unreadable answer is one more reason to wait."""
        try:
            return await self.backend.uncommitted_configuration(leader_url)
        except AgentError as exc:
            return f"the leader's configuration index unreadable: {exc.message}"

    def has_state(self) -> bool:
        data_dir = self.settings.data_dir
        return data_dir is not None and (data_dir / "raft.db").exists()

    async def prepare(self, peers: Sequence[Peer], *, deadline: float,
                      rediscover: Rediscover) -> dict[str, Any]:
        """Plan, remove stale entries, wait until a join can commit; template variables."""
        own = self.host(self.pod.ordinal, peers)
        if own is None:
            raise BackendError("rqlite: this pod's own address is unknown (POD_IP unset?)")
        raft_address = host_port(own, self.peer_port)
        has_state = self.has_state()
        bootstrap_member = self.pod.ordinal in self.settings.bootstrap_ordinals()
        current = list(peers)
        removed_at: float | None = None

        async def attempt() -> Done[RqlitePlan] | Pending:
            nonlocal current, removed_at
            found = await self.leader_view(current)
            stores = {} if found or has_state else await self.store_states(current)
            formed = next((url for url, held in stores.values() if held), None)
            blocker = None
            if found is None and not has_state and formed is None and bootstrap_member:
                blocker = await self.bootstrap_blocker(
                    current, {ordinal: held for ordinal, (_, held) in stores.items()})
            plan = plan_start(
                node_id=self.node_id, raft_address=raft_address,
                members=found.view.members if found else None, has_state=has_state,
                bootstrap_member=bootstrap_member, formed_at=formed,
                bootstrap_blocker=blocker)
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
                removed_at = time.monotonic()
                log.warning("rqlite_stale_entry_removed", member=stale, reason=plan.reason)
            if plan.state == "join":
                members = [m for m in view.members if m.id not in plan.remove]
                obstacle = quorum_for_add(members, await answering(self.backend.view, members))
                if obstacle is None:
                    # This node starts with no entry of its own only once the change that
                    # dropped it is committed: a later leader could list it again, and
                    # rqlited's join would then take it back as that old voter, no log.
                    obstacle = await self.uncommitted(leader_url)
                if obstacle is not None:
                    return Pending(obstacle)
            return Done(plan)

        plan = await poll(attempt, what="an rqlite cluster this node can start into",
                          timeout_seconds=max(0.0, deadline - time.monotonic()))
        log.info("rqlite_plan", state=plan.state, reason=plan.reason, node_id=self.node_id,
                 removed=list(plan.remove))
        if removed_at is not None:
            left = removed_at + LAST_REPLICATION_AFTER_REMOVAL_SECONDS - time.monotonic()
            if left > 0:
                log.info("rqlite_waiting_out_last_replication", seconds=round(left, 1),
                         reason="the leader may still send the removed entry's address "
                                "AppendEntries (its replication's last back-offs); rqlited "
                                "would take one for a cluster it is in and never join")
                await asyncio.sleep(left)
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
