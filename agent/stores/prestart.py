"""What the stores' pre-start work shares: this pod's and its peers' addresses, data set aside."""

from __future__ import annotations

import datetime
import itertools
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from agent.addresses import host_port
from agent.config.settings import Settings
from agent.discovery import Peer, ServiceNames
from agent.identity import PodIdentity
from agent.registry import store_spec


def move_aside(path: Path, *, keep: int = 1) -> tuple[Path, list[Path]]:
    """Rename ``path`` to ``<path>.removed-<UTC stamp>`` beside it (works when the data
    dir itself is a mount point, which cannot be renamed), then delete all but the
    ``keep`` newest such copies. Returns (the new copy's path, the copies deleted)."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.removed-{stamp}")
    for again in itertools.count(2):  # two moves within one second
        if not target.exists():
            break
        target = path.with_name(f"{path.name}.removed-{stamp}-{again}")
    path.rename(target)
    copies = sorted(path.parent.glob(f"{path.name}.removed-*"), key=_stamp, reverse=True)
    deleted = copies[keep:]
    for old in deleted:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old)
        else:
            old.unlink()
    return target, deleted


def _stamp(copy: Path) -> tuple[str, int]:
    """A copy's place in time: its stamp, then the number added within one second."""
    stamp, _, again = copy.name.rsplit(".removed-", 1)[1].partition("-")
    return stamp, int(again) if again.isdigit() else 1


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
