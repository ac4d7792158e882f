"""What the stores' pre-start work shares: this pod's and its peers' addresses, data set aside."""

from __future__ import annotations

import datetime
import itertools
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import structlog

from agent.addresses import host_port
from agent.config.settings import Settings
from agent.discovery import Peer, ServiceNames
from agent.identity import PodIdentity
from agent.registry import store_spec

log = structlog.get_logger(__name__)


def move_aside(path: Path, *, keep: int = 1) -> tuple[Path, list[Path]]:
    """Rename ``path`` to ``<path>.removed-<UTC stamp>`` beside it (works when the data
    dir itself is a mount point, which cannot be renamed), then delete the older copies
    this function made (names of exactly that form) beyond the ``keep`` newest, the new
    one always among them. Anything else beside it is left alone. A copy that cannot be
    deleted is logged and kept: the copies are for forensics, never worth failing init.
    Returns (the new copy's path, the copies deleted)."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.removed-{stamp}")
    for again in itertools.count(2):  # two moves within one second
        if not target.exists():
            break
        target = path.with_name(f"{path.name}.removed-{stamp}-{again}")
    path.rename(target)
    pattern = re.compile(re.escape(path.name) + r"\.removed-(\d{8}T\d{6}Z)(?:-(\d+))?")
    older = []
    for copy in path.parent.iterdir():
        found = pattern.fullmatch(copy.name)
        if found is not None and copy != target:
            older.append(((found[1], int(found[2] or 1)), copy))
    older.sort(reverse=True)  # newest first: by stamp, then by the number within a second
    deleted = []
    for _, copy in older[max(keep - 1, 0):]:
        try:
            if copy.is_dir() and not copy.is_symlink():
                shutil.rmtree(copy)
            else:
                copy.unlink()
        except OSError as exc:
            log.warning("moved_aside_copy_kept", copy=str(copy), error=str(exc))
            continue
        deleted.append(copy)
    return target, deleted


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
