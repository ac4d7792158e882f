"""Discovery against canned DNS answers: mapping answers to pods, waits and their errors."""

from __future__ import annotations

import pytest

from agent.discovery import (
    MAX_PROBED_ORDINALS,
    Discovery,
    Peer,
    ServiceNames,
    SrvRecord,
    assemble_peers,
    missing_ordinals,
    probe_count,
)
from agent.errors import DiscoveryError
from tests.fakes import FakeDns, FakeTime

NAMES = ServiceNames(statefulset="db", service="db-hl", namespace="prod", domain="cluster.local",
                     srv_port_name="raft")
SVC = "db-hl.prod.svc.cluster.local"
SRV = "_raft._tcp.db-hl.prod.svc.cluster.local"


def pod(i: int) -> str:
    return f"db-{i}.db-hl.prod.svc.cluster.local"


def test_names() -> None:
    assert NAMES.service_fqdn == SVC
    assert NAMES.srv_fqdn == SRV
    assert NAMES.pod_fqdn(10) == pod(10)
    assert NAMES.ordinal_of(pod(3) + ".") == 3
    assert NAMES.ordinal_of("web-3.db-hl.prod.svc.cluster.local") is None


@pytest.mark.parametrize(
    ("expected", "addresses", "srv_ordinals", "count"),
    [
        (3, [], [], 3),
        (0, ["1", "2"], [], 2),
        (1, ["1"], [4], 5),
        (0, [], [], 0),
        (1000, [], [], MAX_PROBED_ORDINALS),
    ],
)
def test_probe_count(expected: int, addresses: list[str], srv_ordinals: list[int],
                     count: int) -> None:
    assert probe_count(expected, addresses, srv_ordinals) == count


def test_assemble_from_probes_srv_and_ptr() -> None:
    peers = assemble_peers(
        NAMES,
        probed={0: ["10.0.0.1"], 1: [], 2: ["10.0.0.3", "fd00::3"]},
        srv=[
            SrvRecord(0, 10, 4002, pod(2) + "."),
            SrvRecord(0, 10, 4002, pod(0)),
            SrvRecord(0, 10, 4002, "web-0.web.prod.svc.cluster.local"),
            SrvRecord(0, 10, 9999, pod(5)),
        ],
        reverse={"10.0.0.2": ["ignored.example", pod(1)], "10.0.0.9": ["other.example"]},
    )
    assert peers == [
        Peer(0, "db-0", pod(0), ("10.0.0.1",), 4002),
        Peer(1, "db-1", pod(1), ("10.0.0.2",), None),
        Peer(2, "db-2", pod(2), ("10.0.0.3", "fd00::3"), 4002),
        Peer(5, "db-5", pod(5), (), 9999),
    ]
    # A peer seen only in SRV (its A record not there yet) does not count as resolvable.
    assert missing_ordinals(peers, range(6)) == [3, 4, 5]
    assert missing_ordinals(peers, range(1, 4)) == [3]


async def test_discover_maps_service_addresses_to_pods() -> None:
    dns = FakeDns(
        hosts={SVC: ["10.0.0.1", "10.0.0.2", "10.0.0.7"], pod(0): ["10.0.0.1"],
               pod(1): ["10.0.0.2"], pod(5): ["10.0.0.7"]},
        srv_records={SRV: [SrvRecord(0, 10, 4002, pod(i)) for i in (0, 1)]},
        reverse={"10.0.0.7": [pod(5)]},
    )
    peers = await Discovery(dns, NAMES).discover(expected=2)
    assert [(p.ordinal, p.addresses, p.port) for p in peers] == [
        (0, ("10.0.0.1",), 4002), (1, ("10.0.0.2",), 4002), (5, ("10.0.0.7",), None),
    ]
    # ordinals 0..2 probed (3 Service addresses), PTR only for the unclaimed address
    assert [q for q in dns.queries if q[0] == "PTR"] == [("PTR", "10.0.0.7")]
    assert {q[1] for q in dns.queries if q[0] == "A"} == {SVC, pod(0), pod(1), pod(2)}


async def test_discover_from_the_first_ordinal() -> None:
    """spec.ordinals.start 5: pods 5..9, no SRV port. Probing from 0 would look up
    ordinals 0..4 and miss every pod."""
    names = ServiceNames(statefulset="db", service="db-hl", namespace="prod",
                         domain="cluster.local")
    addresses = {i: f"10.0.0.{i}" for i in range(5, 10)}
    dns = FakeDns(hosts={SVC: list(addresses.values()),
                         **{pod(i): [a] for i, a in addresses.items()}})
    peers = await Discovery(dns, names).discover(expected=3, start=5)
    assert [p.ordinal for p in peers] == [5, 6, 7, 8, 9]
    assert {q[1] for q in dns.queries if q[0] == "A"} == {SVC, *(pod(i) for i in addresses)}
    assert probe_count(1, [], [12], start=5) == 8
    assert probe_count(3, [], [], start=300) == 3


async def test_discover_without_srv_port_asks_no_srv() -> None:
    names = ServiceNames(statefulset="db", service="db-hl", namespace="prod",
                         domain="cluster.local")
    dns = FakeDns(hosts={pod(0): ["10.0.0.1"]})
    peers = await Discovery(dns, names).discover(expected=1)
    assert [p.fqdn for p in peers] == [pod(0)]
    assert not [q for q in dns.queries if q[0] == "SRV"]


async def test_wait_for_self_until_own_ip_appears() -> None:
    dns = FakeDns()
    time = FakeTime()
    seen: list[int] = []

    async def sleep(seconds: float) -> None:
        await time.sleep(seconds)
        seen.append(1)
        if len(seen) == 2:
            dns.hosts[pod(1)] = ["10.9.9.9"]  # stale record of a previous pod
        if len(seen) == 3:
            dns.failing.add(pod(1))
        if len(seen) == 4:
            dns.failing.clear()
            dns.hosts[pod(1)] = ["10.0.0.2"]

    addresses = await Discovery(dns, NAMES).wait_for_self(1, "10.0.0.2", timeout_seconds=60,
                                                          sleep=sleep, clock=time.clock)
    assert addresses == ["10.0.0.2"]
    assert len(seen) == 4


async def test_wait_for_self_deadline_says_what_is_wrong() -> None:
    dns = FakeDns(hosts={pod(1): ["10.9.9.9"]})
    time = FakeTime()
    with pytest.raises(DiscoveryError) as info:
        await Discovery(dns, NAMES).wait_for_self(1, "10.0.0.2", timeout_seconds=30,
                                                  sleep=time.sleep, clock=time.clock)
    assert info.value.exit_code == 4
    assert f"own DNS name {pod(1)} -> 10.0.0.2" in info.value.message
    assert "resolves to 10.9.9.9, not POD_IP 10.0.0.2" in info.value.message
    assert time.now == pytest.approx(30)


async def test_wait_for_peers_names_missing_then_succeeds() -> None:
    dns = FakeDns(hosts={pod(0): ["10.0.0.1"]})
    time = FakeTime()
    attempts = 0

    async def sleep(seconds: float) -> None:
        nonlocal attempts
        attempts += 1
        await time.sleep(seconds)
        if attempts == 3:
            dns.hosts[pod(1)] = ["10.0.0.2"]
            dns.hosts[pod(2)] = ["10.0.0.3"]

    peers = await Discovery(dns, NAMES).wait_for_peers(range(3), timeout_seconds=60, sleep=sleep,
                                                       clock=time.clock)
    assert [p.ordinal for p in peers] == [0, 1, 2]


async def test_wait_for_peers_deadline_lists_missing_names() -> None:
    dns = FakeDns(hosts={pod(0): ["10.0.0.1"], pod(2): ["10.0.0.3"]})
    time = FakeTime()
    with pytest.raises(DiscoveryError) as info:
        await Discovery(dns, NAMES).wait_for_peers(range(4), timeout_seconds=10, sleep=time.sleep,
                                                   clock=time.clock)
    message = info.value.message
    assert f"4 bootstrap peers of {SVC}" in message
    assert f"2 of 4 resolve; missing {pod(1)}, {pod(3)}" in message


async def test_wait_for_peers_rides_out_resolver_failures() -> None:
    dns = FakeDns(hosts={pod(0): ["10.0.0.1"]}, failing={SVC})
    time = FakeTime()

    async def sleep(seconds: float) -> None:
        await time.sleep(seconds)
        dns.failing.clear()

    peers = await Discovery(dns, NAMES).wait_for_peers(range(1), timeout_seconds=10, sleep=sleep,
                                                       clock=time.clock)
    assert [p.ordinal for p in peers] == [0]
