"""etcd init work: find the cluster, plan this member's start, make the membership changes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import structlog

from agent.config.settings import Settings
from agent.discovery import Peer, ServiceNames
from agent.errors import AgentError, BackendUnavailable, DiscoveryError
from agent.identity import PodIdentity
from agent.model import Member
from agent.quorum import quorum_for_add
from agent.storekit.capabilities import Rediscover
from agent.storekit.prestart import PrestartBase, move_aside
from agent.stores.etcd.api import EtcdBackend
from agent.stores.etcd.options import EtcdOptions
from agent.stores.etcd.plan import Action, EtcdPlan, plan_start
from agent.stores.etcd.wal import WalUnreadable, member_ids
from agent.survey import answering

log = structlog.get_logger("agent.etcd")


class EtcdPrestart(PrestartBase):
    """Everything ``sts-agent init`` does for etcd before the store starts."""

    store = "etcd"

    def __init__(self, settings: Settings, names: ServiceNames, pod: PodIdentity,
                 client: httpx.AsyncClient) -> None:
        super().__init__(settings, names, pod)
        self.backend = EtcdBackend(client, "http://unused")

    def has_state(self) -> bool:
        data_dir = self.settings.data_dir
        return data_dir is not None and (data_dir / "member").is_dir()

    def _names_by_url(self, peers: Sequence[Peer]) -> dict[str, str]:
        """Peer URL -> pod name for every pod we know of."""
        names = {}
        for ordinal in {*self.settings.bootstrap_ordinals(), *(p.ordinal for p in peers)}:
            host = self.host(ordinal, peers)
            if host is not None:
                names[self.url(host, self.peer_port)] = f"{self.pod.statefulset}-{ordinal}"
        return names

    async def _members(self, peers: Sequence[Peer]) -> tuple[list[Member] | None, str | None]:
        """The member list from the first peer that answers, and that peer's client URL."""
        for peer in peers:
            if peer.ordinal == self.pod.ordinal:
                continue
            host = self.host(peer.ordinal, peers)
            if host is None:
                continue
            url = self.url(host, self.client_port)
            try:
                view = await self.backend.view(url)
            except AgentError:
                continue
            if view.members:
                return list(view.members), url
        return None, None

    async def prepare(self, peers: Sequence[Peer], *, deadline: float,
                      rediscover: Rediscover) -> dict[str, Any]:
        """Plan, act, and return the template variables etcd's config needs."""
        name = self.pod.name
        own_host = self.host(self.pod.ordinal, peers)
        if own_host is None:
            raise DiscoveryError("etcd: this pod's own address is unknown (POD_IP unset?)")
        peer_url = self.url(own_host, self.peer_port)
        data_dir = self.settings.data_dir
        has_data = self.has_state()
        local_id = None
        if has_data:
            assert data_dir is not None
            try:
                local_id = member_ids(data_dir)[0]
            except (OSError, WalUnreadable) as exc:
                log.warning("etcd_wal_unreadable", error=str(exc))
        while True:
            bootstrap = []
            for ordinal in self.settings.bootstrap_ordinals():
                host = self.host(ordinal, peers)
                if host is not None:
                    bootstrap.append((f"{self.pod.statefulset}-{ordinal}",
                                      self.url(host, self.peer_port)))
            names = self._names_by_url(peers)
            members, via = await self._members(peers)
            blocker = None
            if members is None and not has_data and name in {n for n, _ in bootstrap}:
                blocker = await self.bootstrap_blocker(peers)
            plan = plan_start(name=name, peer_url=peer_url, bootstrap=bootstrap,
                             members=members, has_data=has_data, local_id=local_id,
                             names_by_url=names, bootstrap_blocker=blocker)
            if plan.state != "wait" and (plan.state != "new" or len(bootstrap) ==
                                         self.settings.bootstrap_expect or has_data):
                break
            if time.monotonic() >= deadline:
                raise DiscoveryError(f"etcd: gave up waiting: {plan.reason}")
            log.info("etcd_waiting", reason=plan.reason)
            await asyncio.sleep(1.0)
            peers = await rediscover()
        log.info("etcd_plan", state=plan.state, reason=plan.reason,
                 actions=[a.kind for a in plan.actions])
        for action in plan.actions:
            await self._do(action, members or [], via, data_dir, deadline)
        if plan.actions:
            # The configuration etcd checks at start is the one after our add, which may
            # also hold members added meanwhile by other pods: read it again.
            after, _ = await self._members(peers)
            final = plan_start(name=name, peer_url=peer_url, bootstrap=bootstrap,
                              members=after, has_data=False, names_by_url=names,
                              bootstrap_blocker=None)
            if final.actions or after is None:
                raise BackendUnavailable(f"etcd: after joining, the member list does not "
                                         f"show this member as added: {final.reason}")
            plan = EtcdPlan(plan.state, final.initial_cluster, plan.actions, plan.reason)
        return {
            "etcd_name": name,
            "etcd_peer_url": peer_url,
            "etcd_client_url": self.url(own_host, self.client_port),
            "etcd_initial_cluster": plan.initial_cluster,
            "etcd_initial_cluster_state": plan.state,
        }

    async def _do(self, action: Action, members: Sequence[Member], via: str | None,
                  data_dir: Path | None, deadline: float) -> None:
        if action.kind == "move_data_aside":
            assert data_dir is not None
            moved, deleted = move_aside(data_dir / "member",
                                        keep=self.settings.options(EtcdOptions).moved_aside_keep)
            log.warning("etcd_data_moved_aside", to=str(moved),
                        older_copies_deleted=[str(p) for p in deleted])
            return
        assert via is not None
        while True:
            try:
                if action.kind == "remove_member":
                    await self.backend.remove(action.target, leader_url=via)
                    log.info("etcd_stale_member_removed", member=action.target)
                    return
                obstacle = quorum_for_add(members, await answering(self.backend.view, members))
                if obstacle is None:
                    added = await self.backend.add_learner(action.target, via=via)
                    log.info("etcd_learner_added", member=added.id, peer_url=action.target)
                    return
                reason = obstacle
            except BackendUnavailable as exc:
                reason = exc.message
            if time.monotonic() >= deadline:
                raise DiscoveryError(f"etcd: {action.kind} did not succeed: {reason}")
            log.info("etcd_retry", action=action.kind, reason=reason)
            await asyncio.sleep(0.5)
