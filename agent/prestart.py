"""What the stores' init work shares: this pod's and its peers' addresses, data set aside."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from pathlib import Path

from agent.config import Settings, host_port
from agent.discovery import Peer, ServiceNames
from agent.identity import PodIdentity


def move_aside(path: Path) -> Path:
    """Rename ``path`` to ``<path>.removed-<UTC stamp>`` beside it; never deletes. Works
    when the data dir itself is a mount point, which cannot be renamed."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.removed-{stamp}")
    path.rename(target)
    return target


class Prestart:
    """Addresses for one store's init work, as the store will advertise them."""

    def __init__(self, settings: Settings, names: ServiceNames, pod: PodIdentity) -> None:
        self.settings = settings
        self.names = names
        self.pod = pod

    def host(self, ordinal: int, peers: Sequence[Peer]) -> str | None:
        """Pod ``ordinal``'s stable name, or its address (``advertise: ip``) when known."""
        if self.settings.advertise == "fqdn":
            return self.names.pod_fqdn(ordinal)
        if ordinal == self.pod.ordinal:
            return self.settings.pod_ip
        found = next((p for p in peers if p.ordinal == ordinal and p.addresses), None)
        return found.addresses[0] if found is not None else None

    @staticmethod
    def url(host: str, port: int) -> str:
        return f"http://{host_port(host, port)}"
