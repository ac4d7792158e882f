"""The real DnsClient: dnspython's async resolver, optionally pointed at one server."""

from __future__ import annotations

import asyncio

import dns.asyncresolver
import dns.exception
import dns.resolver
import dns.reversename

from agent.addresses import host_port
from agent.discovery import DnsUnavailable, SrvRecord


class DnspythonClient:
    """Absolute-name lookups (no search list), NXDOMAIN and no-data as empty answers."""

    def __init__(
        self, nameserver: tuple[str, int] | None = None, *, timeout_seconds: float = 2.0
    ) -> None:
        if nameserver is None:
            resolver = dns.asyncresolver.Resolver(configure=True)
        else:
            resolver = dns.asyncresolver.Resolver(configure=False)
            resolver.nameservers = [nameserver[0]]
            resolver.port = nameserver[1]
        resolver.timeout = timeout_seconds
        resolver.lifetime = timeout_seconds
        self.resolver = resolver

    async def _query(self, name: str, rdtype: str) -> list[str]:
        qname = name if name.endswith(".") else name + "."
        try:
            answer = await self.resolver.resolve(
                qname, rdtype, search=False, raise_on_no_answer=False
            )
        except dns.resolver.NXDOMAIN:
            return []
        except dns.exception.Timeout:
            raise DnsUnavailable(
                f"{rdtype} {name}: no answer from DNS server {self._servers()} within "
                f"{self.resolver.lifetime}s"
            ) from None
        except dns.resolver.NoNameservers as exc:
            raise DnsUnavailable(f"{rdtype} {name}: {exc}") from None
        except dns.exception.DNSException as exc:
            raise DnsUnavailable(f"{rdtype} {name}: {type(exc).__name__}: {exc}") from None
        if answer.rrset is None:
            return []
        return [rdata.to_text() for rdata in answer.rrset]

    def _servers(self) -> str:
        """The nameservers asked, as host:port (for messages)."""
        return ", ".join(host_port(str(ns), self.resolver.port)
                         for ns in self.resolver.nameservers)

    async def addresses(self, name: str) -> list[str]:
        v4, v6 = await asyncio.gather(self._query(name, "A"), self._query(name, "AAAA"))
        return v4 + v6

    async def srv(self, name: str) -> list[SrvRecord]:
        records = []
        for text in await self._query(name, "SRV"):
            priority, weight, port, target = text.split()
            records.append(SrvRecord(int(priority), int(weight), int(port), target.rstrip(".")))
        return records

    async def ptr(self, address: str) -> list[str]:
        name = dns.reversename.from_address(address).to_text()
        return [text.rstrip(".") for text in await self._query(name, "PTR")]
