"""Peer discovery from the headless Service's DNS: A/AAAA, SRV, PTR; waits with deadlines."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from agent import identity
from agent.errors import DeadlineExceeded, DiscoveryError
from agent.identity import PodIdentity
from agent.retry import Backoff, Clock, Done, Pending, Sleep, poll

# Safety bound on ordinal probing: no StatefulSet of a raft store is this large.
MAX_PROBED_ORDINALS = 256


class DnsUnavailable(DiscoveryError):
    """The resolver did not answer usefully (timeout, SERVFAIL, REFUSED): retryable."""


@dataclass(frozen=True, slots=True)
class SrvRecord:
    """One SRV answer."""

    priority: int
    weight: int
    port: int
    target: str


class DnsClient(Protocol):
    """The three lookups discovery needs. Missing names are empty lists, not errors."""

    async def addresses(self, name: str) -> list[str]:
        """A and AAAA answers of ``name``; [] for NXDOMAIN or no data."""
        ...

    async def srv(self, name: str) -> list[SrvRecord]:
        """SRV answers of ``name``; [] for NXDOMAIN or no data."""
        ...

    async def ptr(self, address: str) -> list[str]:
        """Names the reverse zone gives for ``address``; [] when there are none."""
        ...


@dataclass(frozen=True, slots=True)
class Peer:
    """A pod of this StatefulSet as DNS sees it."""

    ordinal: int
    name: str
    fqdn: str
    addresses: tuple[str, ...] = ()
    port: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ordinal": self.ordinal,
            "name": self.name,
            "fqdn": self.fqdn,
            "addresses": list(self.addresses),
            "port": self.port,
        }


@dataclass(frozen=True, slots=True)
class ServiceNames:
    """The DNS names of one StatefulSet behind its headless Service."""

    statefulset: str
    service: str
    namespace: str
    domain: str
    srv_port_name: str | None = None

    @property
    def service_fqdn(self) -> str:
        return identity.service_fqdn(self.service, self.namespace, self.domain)

    @property
    def srv_fqdn(self) -> str | None:
        if self.srv_port_name is None:
            return None
        return identity.srv_name(self.srv_port_name, self.service, self.namespace, self.domain)

    def pod_fqdn(self, ordinal: int) -> str:
        return identity.pod_fqdn(
            identity.pod_name(self.statefulset, ordinal), self.service, self.namespace, self.domain
        )

    def ordinal_of(self, fqdn: str) -> int | None:
        return identity.ordinal_of_fqdn(
            fqdn,
            statefulset=self.statefulset,
            service=self.service,
            namespace=self.namespace,
            domain=self.domain,
        )


@dataclass
class _PeerDraft:
    addresses: list[str] = field(default_factory=list)
    port: int | None = None

    def add(self, addresses: Iterable[str]) -> None:
        for address in addresses:
            if address not in self.addresses:
                self.addresses.append(address)


def probe_count(
    expected: int, service_addresses: Sequence[str], srv_ordinals: Iterable[int],
    start: int = 0,
) -> int:
    """How many ordinals (``start``..``start``+n-1) to look up by name, given what the
    Service returned."""
    highest = max(srv_ordinals, default=start - 1)
    return min(MAX_PROBED_ORDINALS,
               max(expected, len(service_addresses), highest - start + 1))


def assemble_peers(
    names: ServiceNames,
    *,
    probed: Mapping[int, Sequence[str]],
    srv: Sequence[SrvRecord] = (),
    reverse: Mapping[str, Sequence[str]] | None = None,
) -> list[Peer]:
    """Turn raw answers into this set's peers, sorted by ordinal.

    ``probed`` maps ordinal -> addresses of its pod FQDN; ``srv`` are the SRV answers
    of the named port; ``reverse`` maps a Service address that no probed name
    claimed to its PTR names. Answers naming other sets or Services are ignored.
    """
    drafts: dict[int, _PeerDraft] = {}
    for ordinal, addresses in probed.items():
        if addresses:
            drafts.setdefault(ordinal, _PeerDraft()).add(addresses)
    for record in srv:
        srv_ordinal = names.ordinal_of(record.target)
        if srv_ordinal is None:
            continue
        draft = drafts.setdefault(srv_ordinal, _PeerDraft())
        if draft.port is None:
            draft.port = record.port
    for address, ptr_names in (reverse or {}).items():
        for ptr_name in ptr_names:
            ptr_ordinal = names.ordinal_of(ptr_name)
            if ptr_ordinal is not None:
                drafts.setdefault(ptr_ordinal, _PeerDraft()).add([address])
                break
    return [
        Peer(
            ordinal=ordinal,
            name=identity.pod_name(names.statefulset, ordinal),
            fqdn=names.pod_fqdn(ordinal),
            addresses=tuple(draft.addresses),
            port=draft.port,
        )
        for ordinal, draft in sorted(drafts.items())
    ]


def missing_ordinals(peers: Sequence[Peer], ordinals: Iterable[int]) -> list[int]:
    """Those of ``ordinals`` that have no resolvable peer."""
    present = {peer.ordinal for peer in peers if peer.addresses}
    return [ordinal for ordinal in ordinals if ordinal not in present]


class Discovery:
    """Looks up the peers of one pod's StatefulSet through a DnsClient."""

    def __init__(self, client: DnsClient, names: ServiceNames) -> None:
        self.client = client
        self.names = names

    @classmethod
    def for_pod(
        cls,
        client: DnsClient,
        pod: PodIdentity,
        *,
        service: str,
        namespace: str,
        domain: str,
        srv_port_name: str | None = None,
    ) -> Discovery:
        return cls(
            client,
            ServiceNames(
                statefulset=pod.statefulset,
                service=service,
                namespace=namespace,
                domain=domain,
                srv_port_name=srv_port_name,
            ),
        )

    async def discover(self, *, expected: int = 0, start: int = 0) -> list[Peer]:
        """One round of lookups (at least ``expected`` ordinals from ``start``, the
        StatefulSet's first, more when the Service shows more); raises DnsUnavailable
        when the resolver fails."""
        srv_fqdn = self.names.srv_fqdn
        service_addresses, srv = await asyncio.gather(
            self.client.addresses(self.names.service_fqdn),
            self.client.srv(srv_fqdn) if srv_fqdn else _no_srv(),
        )
        srv_ordinals = [o for o in (self.names.ordinal_of(r.target) for r in srv) if o is not None]
        count = probe_count(expected, service_addresses, srv_ordinals, start)
        ordinals = range(start, start + count)
        answers = await asyncio.gather(
            *(self.client.addresses(self.names.pod_fqdn(ordinal)) for ordinal in ordinals)
        )
        probed = dict(zip(ordinals, answers, strict=True))
        claimed = {address for addresses in answers for address in addresses}
        unclaimed = [a for a in dict.fromkeys(service_addresses) if a not in claimed]
        reverse_answers = await asyncio.gather(*(self.client.ptr(a) for a in unclaimed))
        reverse = dict(zip(unclaimed, reverse_answers, strict=True))
        return assemble_peers(self.names, probed=probed, srv=srv, reverse=reverse)

    async def wait_for_self(
        self,
        pod_ordinal: int,
        pod_ip: str,
        *,
        timeout_seconds: float,
        backoff: Backoff | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
    ) -> list[str]:
        """Wait until this pod's FQDN resolves to ``pod_ip``; return its addresses."""
        fqdn = self.names.pod_fqdn(pod_ordinal)

        async def attempt() -> Done[list[str]] | Pending:
            try:
                addresses = await self.client.addresses(fqdn)
            except DnsUnavailable as exc:
                return Pending(f"resolver failed for {fqdn}: {exc.message}")
            if pod_ip in addresses:
                return Done(addresses)
            if not addresses:
                return Pending(f"{fqdn} does not resolve yet")
            return Pending(f"{fqdn} resolves to {', '.join(addresses)}, not POD_IP {pod_ip}")

        try:
            return await poll(attempt, what=f"own DNS name {fqdn} -> {pod_ip}",
                              timeout_seconds=timeout_seconds, backoff=backoff, sleep=sleep,
                              clock=clock)
        except DeadlineExceeded as exc:
            raise DiscoveryError(exc.message) from None

    async def wait_for_peers(
        self,
        ordinals: range,
        *,
        timeout_seconds: float,
        backoff: Backoff | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
    ) -> list[Peer]:
        """Wait until ``ordinals`` all resolve; return every peer found then."""
        count = len(ordinals)

        async def attempt() -> Done[list[Peer]] | Pending:
            try:
                peers = await self.discover(expected=count, start=ordinals.start)
            except DnsUnavailable as exc:
                return Pending(f"resolver failed: {exc.message}")
            missing = missing_ordinals(peers, ordinals)
            if not missing:
                return Done(peers)
            names = ", ".join(self.names.pod_fqdn(o) for o in missing)
            return Pending(f"{count - len(missing)} of {count} resolve; missing {names}")

        try:
            return await poll(attempt, what=f"{count} bootstrap peers of {self.names.service_fqdn}",
                              timeout_seconds=timeout_seconds, backoff=backoff, sleep=sleep,
                              clock=clock)
        except DeadlineExceeded as exc:
            raise DiscoveryError(exc.message) from None


async def _no_srv() -> list[SrvRecord]:
    return []
