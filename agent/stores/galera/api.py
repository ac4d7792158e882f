"""A Galera node through its wsrep status: the view the readiness verdict and /status read."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from agent.model import ClusterView
from agent.stores.galera.client import Credentials, Endpoint, wsrep_status
from agent.stores.galera.leave import GaleraDeparture
from agent.stores.galera.options import GaleraOptions
from agent.stores.galera.status import build_view, parse_status

if TYPE_CHECKING:
    import httpx

    from agent.config.settings import Settings
    from agent.storekit.capabilities import SidecarContext

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
        self.sst_method = (settings.options(GaleraOptions) if settings
                           else GaleraOptions()).galera_sst_method
        # This node's client address as its peers list it (wsrep_incoming_addresses).
        self.self_address = (f"{settings.pod_ip}:{self.peer_port}"
                             if settings and settings.pod_ip else None)

    async def view(self, api_url: str | None = None) -> ClusterView:
        endpoint = Endpoint.parse(api_url) if api_url else self.endpoint
        status = parse_status(await wsrep_status(endpoint, self.credentials,
                                                 timeout_seconds=self.timeout_seconds))
        address = (self.self_address if api_url is None
                   else f"{endpoint.host}:{endpoint.port}")
        return build_view(status, self_address=address, sst_method=self.sst_method)

    def departure(self, context: SidecarContext) -> GaleraDeparture:
        """A member leaves by stopping cleanly (mariadbd sends its leave as it shuts
        down): no member can remove another."""
        return GaleraDeparture()
