"""Identity: StatefulSet pod names, FQDNs and peer names."""

from __future__ import annotations

import pytest

from agent.identity import (
    IdentityError,
    PodIdentity,
    check_dns_name,
    ordinal_of_fqdn,
    parse_pod_name,
    peer_names,
    pod_fqdn,
    service_fqdn,
    srv_name,
)


@pytest.mark.parametrize(
    ("name", "statefulset", "ordinal"),
    [
        ("consul-0", "consul", 0),
        ("web-1", "web", 1),
        ("my-rqlite-store-10", "my-rqlite-store", 10),
        ("etcd-123", "etcd", 123),
        ("a-b-c-9", "a-b-c", 9),
        ("x1-2", "x1", 2),
        ("2-3", "2", 3),
    ],
)
def test_parse_pod_name(name: str, statefulset: str, ordinal: int) -> None:
    identity = parse_pod_name(name)
    assert identity == PodIdentity(statefulset=statefulset, ordinal=ordinal)
    assert identity.name == name


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("consul", "not a StatefulSet pod name"),
        ("consul-", "not a valid hostname label"),
        ("consul-01", "not a StatefulSet pod name"),
        ("consul-abc", "not a StatefulSet pod name"),
        ("-0", "not a valid hostname label"),
        ("Consul-0", "not a valid hostname label"),
        ("consul_x-0", "not a valid hostname label"),
        ("", "not a valid hostname label"),
        ("a" * 62 + "-0", "not a valid hostname label"),
        ("consul-0.consul", "not a valid hostname label"),
        ("web-7f9c4b8d6-x2x9z", "not a StatefulSet pod name"),
    ],
)
def test_parse_pod_name_rejects(name: str, reason: str) -> None:
    with pytest.raises(IdentityError, match=reason) as info:
        parse_pod_name(name)
    assert repr(name) in info.value.message


def test_fqdns() -> None:
    assert service_fqdn("consul", "prod", "cluster.local") == "consul.prod.svc.cluster.local"
    assert pod_fqdn("consul-2", "consul", "prod", "k8s.example") == (
        "consul-2.consul.prod.svc.k8s.example"
    )
    assert srv_name("serflan", "consul", "prod", "cluster.local") == (
        "_serflan._tcp.consul.prod.svc.cluster.local"
    )


@pytest.mark.parametrize(
    ("replicas", "expected"),
    [(0, []), (1, ["db-0"]), (3, ["db-0", "db-1", "db-2"])],
)
def test_peer_names(replicas: int, expected: list[str]) -> None:
    assert peer_names("db", replicas) == expected


def test_peer_names_eleven_has_double_digits() -> None:
    names = peer_names("db", 11)
    assert names[10] == "db-10"
    assert len(names) == 11


def test_peer_names_negative() -> None:
    with pytest.raises(IdentityError):
        peer_names("db", -1)


@pytest.mark.parametrize(
    ("fqdn", "expected"),
    [
        ("db-0.db.prod.svc.cluster.local", 0),
        ("db-12.db.prod.svc.cluster.local.", 12),
        ("DB-3.DB.PROD.svc.cluster.local", 3),
        ("other-0.db.prod.svc.cluster.local", None),
        ("db-0.other.prod.svc.cluster.local", None),
        ("db-0.db.default.svc.cluster.local", None),
        ("db-01.db.prod.svc.cluster.local", None),
        ("x.db-0.db.prod.svc.cluster.local", None),
        ("db.prod.svc.cluster.local", None),
    ],
)
def test_ordinal_of_fqdn(fqdn: str, expected: int | None) -> None:
    got = ordinal_of_fqdn(fqdn, statefulset="db", service="db", namespace="prod",
                          domain="cluster.local")
    assert got == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("cluster.local", "cluster.local"), ("Cluster.Local.", "cluster.local"), ("k8s", "k8s")],
)
def test_check_dns_name(value: str, expected: str) -> None:
    assert check_dns_name(value) == expected


@pytest.mark.parametrize("value", ["", ".", "a..b", "-a.b", "a_b.c", "x" * 64 + ".com"])
def test_check_dns_name_rejects(value: str) -> None:
    with pytest.raises(IdentityError):
        check_dns_name(value)
