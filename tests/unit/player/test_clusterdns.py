"""The player's cluster DNS: CoreDNS's records from Services and EndpointSlices."""

from __future__ import annotations

from typing import Any

from player.clusterdns import records_for
from player.dns import SrvEntry

NS = "db"
HEADLESS = {"metadata": {"name": "etcd"}, "spec": {"clusterIP": "None"}}
CLIENT = {"metadata": {"name": "etcd-client"}, "spec": {"clusterIP": "10.96.1.20"}}


def endpoint(ip: str, hostname: str | None, ready: bool) -> dict[str, Any]:
    found: dict[str, Any] = {"addresses": [ip], "conditions": {"ready": ready}}
    if hostname:
        found["hostname"] = hostname
    return found


def slice_of(service: str, *endpoints: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": f"{service}-x",
                         "labels": {"kubernetes.io/service-name": service}},
            "ports": [{"name": "client", "port": 2379, "protocol": "TCP"}],
            "endpoints": list(endpoints)}


def test_headless_service_per_pod_names_and_srv() -> None:
    records = records_for(NS, [HEADLESS], [slice_of(
        "etcd", endpoint("10.77.1.10", "etcd-0", True), endpoint("10.77.1.11", "etcd-1", True),
        endpoint("10.77.1.12", "etcd-2", False))])
    service = f"etcd.{NS}.svc.cluster.local"
    assert records.hosts[service] == ["10.77.1.10", "10.77.1.11"]
    assert records.hosts[f"etcd-0.{service}"] == ["10.77.1.10"]
    assert f"etcd-2.{service}" not in records.hosts  # not ready (no publishNotReady)
    assert records.srv == [SrvEntry(f"_client._tcp.{service}", f"etcd-{i}.{service}", 2379)
                           for i in (0, 1)]


def test_client_service_answers_with_its_ready_endpoints() -> None:
    """No kube-proxy: a ClusterIP Service's name gives its ready endpoints, no per-pod
    names, no SRV records."""
    records = records_for(NS, [CLIENT], [slice_of(
        "etcd-client", endpoint("10.77.1.10", "etcd-0", True),
        endpoint("10.77.1.11", None, False))])
    assert records.hosts == {f"etcd-client.{NS}.svc.cluster.local": ["10.77.1.10"]}
    assert records.srv == []


def test_slices_of_unknown_services_are_ignored() -> None:
    records = records_for(NS, [HEADLESS], [slice_of("other",
                                                   endpoint("10.77.1.9", "x-0", True))])
    assert records.hosts == {} and records.srv == []
