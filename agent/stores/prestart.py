"""What the stores' pre-start work shares: this pod's and its peers' addresses, data set aside."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from agent.addresses import host_port
from agent.config.settings import Settings
from agent.discovery import Peer, ServiceNames
from agent.identity import PodIdentity
from agent.registry import store_spec


def move_aside(path: Path) -> Path:
    """Rename ``path`` to ``<path>.removed-<UTC stamp>`` beside it; never deletes. Works
    when the data dir itself is a mount point, which cannot be renamed."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.removed-{stamp}")
    path.rename(target)
    return target


class PrestartBase:
    """Addresses for one store's init work, as the store will advertise them."""

    store: ClassVar[str]  # the registered name, for the default ports

    def __init__(self, settings: Settings, names: ServiceNames, pod: PodIdentity) -> None:
        self.settings = settings
        self.names = names
        self.pod = pod
        spec = store_spec(self.store)
        self.peer_port = settings.peer_port or spec.peer_port
        self.client_port = settings.client_port or spec.client_port

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
