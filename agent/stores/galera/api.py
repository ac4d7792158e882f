"""A Galera node through its wsrep status: the view the readiness verdict and /status read."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, ClassVar

import structlog

from agent.model import ClusterView
from agent.stores.galera.bootstrap import drop_new_cluster
from agent.stores.galera.client import Credentials, Endpoint, wsrep_status
from agent.stores.galera.leave import GaleraDeparture
from agent.stores.galera.options import GaleraOptions
from agent.stores.galera.recovery import RECOVERY_SEED, RecoverySeed
from agent.stores.galera.status import GaleraStatus, build_view, parse_status
from agent.stores.galera.stuck import StuckMember

if TYPE_CHECKING:
    from pathlib import Path

    import httpx

    from agent.config.settings import Settings
    from agent.leave import Events
    from agent.model import Snapshot
    from agent.storekit.capabilities import SidecarContext

log = structlog.get_logger("agent.galera")

DEFAULT_TIMEOUT_SECONDS = 2.0


class GaleraBackend:
    """One mariadbd's wsrep status; ``api_url`` (``mysql://host:3306``) asks another."""

    name: ClassVar[str] = "galera"

    def __init__(self, client: httpx.AsyncClient, base_url: str, *,
                 peer_api_port: int | None = None,
                 settings: Settings | None = None) -> None:
        self.endpoint = Endpoint.parse(base_url)
        self.peer_port = peer_api_port or 3306
        self.credentials = Credentials.of(settings)
        self.timeout_seconds = (settings.store_timeout_seconds if settings
                                else DEFAULT_TIMEOUT_SECONDS)
        options = settings.options(GaleraOptions) if settings else GaleraOptions()
        self.drain_seconds = options.galera_drain_seconds
        # A node stuck outside the Primary component, marked for its liveness probe.
        self.stuck = (StuckMember(options.galera_restart_marker,
                                  after_seconds=options.galera_restart_non_primary_seconds)
                      if options.galera_restart_marker is not None else None)
        # This node's client address as its peers list it (wsrep_incoming_addresses).
        self.self_address = (f"{settings.pod_ip}:{self.peer_port}"
                             if settings and settings.pod_ip else None)
        # Where init rendered galera.cnf, when this container mounts it (the flag's drop).
        self.config_dir: Path | None = settings.output_dir if settings else None
        # The vote's seed of a start by pc.recovery: its bootstrap if the view never forms.
        port = settings.effective_peer_port() if settings is not None else None
        group = ((settings.pod_ip, port)
                 if settings is not None and settings.pod_ip and port else None)
        self.recovery = (RecoverySeed(self.config_dir / RECOVERY_SEED,
                                      config_dir=self.config_dir,
                                      marker=options.galera_restart_marker, group=group,
                                      after_seconds=options.galera_recovery_bootstrap_seconds)
                         if self.config_dir is not None else None)
        self.own: GaleraStatus | None = None  # this node's status at the last poll
        self._bootstrap_checked = False

    async def view(self, api_url: str | None = None) -> ClusterView:
        endpoint = Endpoint.parse(api_url) if api_url else self.endpoint
        status = parse_status(await wsrep_status(endpoint, self.credentials,
                                                 timeout_seconds=self.timeout_seconds))
        if api_url is None:
            self.own = status
        address = (self.self_address if api_url is None
                   else f"{endpoint.host}:{endpoint.port}")
        return build_view(status, self_address=address)

    def departure(self, context: SidecarContext) -> GaleraDeparture:
        """A member leaves by stopping cleanly (mariadbd sends its leave as it shuts
        down): no member can remove another."""
        return GaleraDeparture(drain_seconds=self.drain_seconds)

    async def mend(self, snapshot: Snapshot, events: Events | None) -> None:
        """The flag's drop (below), a start by pc.recovery that never formed a Primary
        component (``RecoverySeed``), then a node stuck outside the Primary component
        marked for its liveness probe (``StuckMember``)."""
        await self._drop_bootstrap_flag()
        own = self.own if snapshot.local_error is None else None
        if self.recovery is not None:
            await self.recovery.on_poll(snapshot, own, events)
        if self.stuck is not None:
            await self.stuck.on_poll(snapshot, own, events)

    async def _drop_bootstrap_flag(self) -> None:
        """Once this node shares a Primary component with another member, take
        ``wsrep-new-cluster`` (the vote's seed) out of the config init rendered, once.
        mariadbd's container restarted alone (a crash, an OOM kill: init does not run
        again) then joins the component. With the flag it would not start: its
        ``grastate.dat`` says ``safe_to_bootstrap: 0`` while others run, and were it
        allowed, a bootstrap beside a running component is a second history. Alone in
        its component the seed keeps the flag: nobody has joined, so its restart seeds
        the same history again, as the vote decided."""
        status = self.own
        if (self._bootstrap_checked or self.config_dir is None or status is None
                or status.cluster_status != "Primary" or status.cluster_size < 2):
            return
        self._bootstrap_checked = True
        try:
            changed = await asyncio.to_thread(drop_new_cluster, self.config_dir)
        except OSError as exc:
            log.warning("galera_bootstrap_flag_kept", directory=str(self.config_dir),
                        error=str(exc), why="a restart of mariadbd alone would try to "
                        "seed again, and fail while others run: mount the config "
                        "directory writable in the agent's container")
            return
        if changed:
            log.info("galera_bootstrap_flag_dropped", files=changed,
                     cluster_size=status.cluster_size,
                     why="another member has joined: a restart of mariadbd alone joins")
