"""Discovery against a real dnsmasq serving a headless Service's A, SRV and PTR records."""

from __future__ import annotations

import asyncio

import pytest

from agent.discovery import Discovery, DnsUnavailable, ServiceNames
from agent.dnsclient import DnspythonClient
from agent.errors import DiscoveryError
from agent.retry import Backoff
from player.dns import Dnsmasq, Records, statefulset_records

pytestmark = pytest.mark.integration

NAMES = ServiceNames(statefulset="consul", service="consul", namespace="prod",
                     domain="cluster.local", srv_port_name="serflan")
FAST = Backoff(initial_seconds=0.05, maximum_seconds=0.2)


def fqdn(i: int) -> str:
    return f"consul-{i}.consul.prod.svc.cluster.local"


def records(pods: dict[int, str], *, srv: bool = True) -> Records:
    return statefulset_records(statefulset="consul", service="consul", namespace="prod",
                               domain="cluster.local", pods=pods,
                               ports={"serflan": 8301} if srv else None)


def client(server: Dnsmasq) -> DnspythonClient:
    host, port = server.server.split(":")
    return DnspythonClient((host, int(port)), timeout_seconds=1.0)


async def test_three_pods_from_a_srv_and_ptr(dnsmasq: Dnsmasq) -> None:
    dnsmasq.set_records(records({0: "127.0.10.1", 1: "127.0.10.2", 2: "127.0.10.3"}))
    peers = await Discovery(client(dnsmasq), NAMES).discover(expected=3)
    assert [(p.fqdn, p.addresses, p.port) for p in peers] == [
        (fqdn(0), ("127.0.10.1",), 8301),
        (fqdn(1), ("127.0.10.2",), 8301),
        (fqdn(2), ("127.0.10.3",), 8301),
    ]


async def test_pods_beyond_expected_found_through_the_service_records(dnsmasq: Dnsmasq) -> None:
    # Parallel pod management: ordinal 1 is missing, 4 exists; bootstrap_expect is 1.
    dnsmasq.set_records(records({0: "127.0.10.1", 2: "127.0.10.3", 4: "127.0.10.5"},
                                srv=False))
    peers = await Discovery(client(dnsmasq), NAMES).discover(expected=1)
    assert [(p.ordinal, p.addresses) for p in peers] == [
        (0, ("127.0.10.1",)), (2, ("127.0.10.3",)), (4, ("127.0.10.5",)),
    ]


async def test_nxdomain_first_then_present(dnsmasq: Dnsmasq) -> None:
    dnsmasq_client = client(dnsmasq)
    assert await dnsmasq_client.addresses(fqdn(0)) == []
    assert await Discovery(dnsmasq_client, NAMES).discover(expected=3) == []
    dnsmasq.set_records(records({0: "127.0.10.1"}))
    peers = await Discovery(dnsmasq_client, NAMES).discover(expected=3)
    assert [p.ordinal for p in peers] == [0]


async def test_wait_for_self_sees_record_added_while_waiting(dnsmasq: Dnsmasq) -> None:
    discovery = Discovery(client(dnsmasq), NAMES)
    waiting = asyncio.create_task(
        discovery.wait_for_self(1, "127.0.10.2", timeout_seconds=20, backoff=FAST)
    )
    await asyncio.to_thread(dnsmasq.set_records, records({1: "127.0.10.9"}, srv=False))
    assert not waiting.done(), "a record with another pod's IP must not satisfy the wait"
    await asyncio.to_thread(dnsmasq.set_records, records({1: "127.0.10.2"}, srv=False))
    assert await asyncio.wait_for(waiting, 20) == ["127.0.10.2"]


async def test_wait_for_peers_picks_up_reloads(dnsmasq: Dnsmasq) -> None:
    dnsmasq.set_records(records({0: "127.0.10.1"}))
    discovery = Discovery(client(dnsmasq), NAMES)
    waiting = asyncio.create_task(discovery.wait_for_peers(range(3), timeout_seconds=30,
                                                            backoff=FAST))
    # SIGHUP reload (A only), then a restart (SRV changes) while the wait goes on.
    await asyncio.to_thread(dnsmasq.set_records,
                            records({0: "127.0.10.1", 1: "127.0.10.2"}, srv=False))
    assert not waiting.done()
    await asyncio.to_thread(dnsmasq.set_records,
                            records({0: "127.0.10.1", 1: "127.0.10.2", 2: "127.0.10.3"}))
    peers = await asyncio.wait_for(waiting, 30)
    assert [p.ordinal for p in peers] == [0, 1, 2]
    assert all(p.port == 8301 for p in peers)


async def test_wait_for_peers_deadline_names_the_missing(dnsmasq: Dnsmasq) -> None:
    dnsmasq.set_records(records({0: "127.0.10.1", 2: "127.0.10.3"}))
    with pytest.raises(DiscoveryError) as info:
        await Discovery(client(dnsmasq), NAMES).wait_for_peers(range(3), timeout_seconds=0.5,
                                                               backoff=FAST)
    assert f"2 of 3 resolve; missing {fqdn(1)}" in info.value.message


async def test_refused_outside_served_domain_is_unavailable(dnsmasq: Dnsmasq) -> None:
    with pytest.raises(DnsUnavailable, match="REFUSED"):
        await client(dnsmasq).addresses("example.com")


async def test_server_down_is_unavailable_not_empty(dnsmasq: Dnsmasq) -> None:
    dnsmasq.stop()
    host, port = dnsmasq.server.split(":")
    down = DnspythonClient((host, int(port)), timeout_seconds=0.2)
    with pytest.raises(DnsUnavailable):
        await down.addresses(fqdn(0))
