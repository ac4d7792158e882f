"""Canned DNS answers, a fake clock, cluster views and a free port for unit tests."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

from agent.discovery import DnsUnavailable, SrvRecord
from agent.model import ClusterView, Member


@dataclass
class FakeDns:
    """A DnsClient answering from dicts; names in ``failing`` raise DnsUnavailable."""

    hosts: dict[str, list[str]] = field(default_factory=dict)
    srv_records: dict[str, list[SrvRecord]] = field(default_factory=dict)
    reverse: dict[str, list[str]] = field(default_factory=dict)
    failing: set[str] = field(default_factory=set)
    queries: list[tuple[str, str]] = field(default_factory=list)

    def _check(self, kind: str, name: str) -> None:
        self.queries.append((kind, name))
        if name in self.failing:
            raise DnsUnavailable(f"{kind} {name}: SERVFAIL")

    async def addresses(self, name: str) -> list[str]:
        self._check("A", name)
        return list(self.hosts.get(name, []))

    async def srv(self, name: str) -> list[SrvRecord]:
        self._check("SRV", name)
        return list(self.srv_records.get(name, []))

    async def ptr(self, address: str) -> list[str]:
        self._check("PTR", address)
        return list(self.reverse.get(address, []))


@dataclass
class FakeTime:
    """A monotonic clock that only moves when ``sleep`` is awaited."""

    now: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def view(self_id: str, leader: str | None, members: tuple[str, ...],
         *, learners: tuple[str, ...] = (), applied: int = 1, commit: int = 1) -> ClusterView:
    """A ClusterView of members named as given (API at ``http://<name>:1``), as node
    ``self_id`` would answer it."""
    return ClusterView(
        members=tuple(Member(id=m, name=m, address=f"{m}:2", api_url=f"http://{m}:1",
                             voter=m not in learners) for m in members),
        leader_id=leader, self_id=self_id, applied_index=applied, commit_index=commit)


def free_port() -> int:
    """A loopback TCP port free when asked (for a server the test starts at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
