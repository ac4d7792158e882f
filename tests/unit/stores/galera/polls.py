"""What a Galera sidecar's poll sees, for the tests of what it does on each: fakes."""

from __future__ import annotations

from agent.model import Snapshot
from agent.stores.galera.status import GaleraStatus, build_view, parse_status
from tests.unit.stores.galera.answers import STATUS

OUTSIDE = {"wsrep_cluster_status": "non-Primary", "wsrep_cluster_size": "1",
           "wsrep_local_state": "1", "wsrep_local_state_comment": "Initialized",
           "wsrep_ready": "OFF"}
PEER = "peer mysql://10.0.0.1:3306"


class Events:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, bool]] = []

    async def event(self, *, reason: str, message: str, warning: bool = False) -> None:
        self.sent.append((reason, message, warning))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def status(**answer: str) -> GaleraStatus:
    return parse_status({**STATUS, **answer})


def snapshot(own: GaleraStatus | None, *, peer: dict[str, str] | None = None,
             source: str | None = PEER, error: str | None = None) -> Snapshot:
    """A poll's outcome: this node's view (none when ``error``) and a peer's as authority."""
    local = (build_view(own, self_address="10.0.0.2:3306")
             if own is not None else None)
    authority = (build_view(status(**peer), self_address="10.0.0.1:3306")
                 if peer is not None else None)
    return Snapshot(local=local, local_error=error, authority=authority,
                    authority_source=source if authority is not None else None)
