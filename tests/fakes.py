"""Canned DNS answers and a fake clock for unit tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.discovery import DnsUnavailable, SrvRecord


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
