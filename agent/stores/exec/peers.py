"""Where the other pods' agents are, for an exec store: by stable name, or by address from DNS."""

from __future__ import annotations

import structlog

from agent.addresses import host_port
from agent.config.settings import Settings
from agent.discovery import Discovery, DnsUnavailable, ServiceNames
from agent.dnsclient import DnspythonClient

log = structlog.get_logger("agent.exec")


class ExecPeers:
    """The agents of this StatefulSet's other pods, by ordinal. With ``advertise: fqdn``
    their stable names; with ``ip`` the addresses DNS gives them now (a lookup per
    call; the last answer kept while DNS fails)."""

    def __init__(self, settings: Settings, domain: str | None) -> None:
        self.settings = settings
        self.port = settings.listen_address()[1]
        self.pod = settings.pod
        self.names = None
        if self.pod is not None and settings.service and settings.namespace and domain:
            self.names = ServiceNames(statefulset=self.pod.statefulset,
                                      service=settings.service,
                                      namespace=settings.namespace, domain=domain,
                                      srv_port_name=settings.srv_port_name)
        self.known: dict[int, str] = {}

    async def urls(self) -> dict[int, str]:
        """Ordinal -> agent URL of every other pod DNS knows (the bootstrap set at least)."""
        if self.names is None or self.pod is None:
            return {}
        client = DnspythonClient(self.settings.nameserver(),
                                 timeout_seconds=self.settings.dns_query_timeout_seconds)
        bootstrap = self.settings.bootstrap_ordinals()
        try:
            peers = await Discovery(client, self.names).discover(expected=len(bootstrap),
                                                                 start=bootstrap.start)
        except DnsUnavailable as exc:
            log.warning("peers_unknown", error=exc.message, kept=sorted(self.known))
            return dict(self.known)
        found = {}
        for peer in peers:
            if peer.ordinal == self.pod.ordinal:
                continue
            if self.settings.advertise == "fqdn":
                host = peer.fqdn
            elif peer.addresses:
                host = peer.addresses[0]
            else:
                continue
            found[peer.ordinal] = f"http://{host_port(host, self.port)}"
        self.known = found
        return dict(found)

    async def url(self, ordinal: int) -> str | None:
        return (await self.urls()).get(ordinal)
