"""Cluster DNS for one namespace, from the API as CoreDNS builds it: the Services and their
EndpointSlices, served by the player's dnsmasq.

A headless Service gets a record per endpoint with a hostname (a StatefulSet pod's stable
name), its own name with every ready endpoint's address, and SRV records per named port.
Without kube-proxy there are no virtual IPs: any other Service's name answers with its
ready endpoints' addresses, as a headless one would.
"""

from __future__ import annotations

import threading
from typing import Any

import httpx

from player.apiclient import JSON, ApiClient, ApiError
from player.dns import Dnsmasq, DnsmasqError, Records, SrvEntry

DOMAIN = "cluster.local"


def records_for(namespace: str, services: list[JSON], slices: list[JSON]) -> Records:
    """What CoreDNS answers for ``namespace``'s Services given their EndpointSlices."""
    records = Records()
    by_service: dict[str, list[JSON]] = {}
    for item in slices:
        service = (item["metadata"].get("labels") or {}).get("kubernetes.io/service-name")
        if service:
            by_service.setdefault(service, []).append(item)
    for service in services:
        name = service["metadata"]["name"]
        fqdn = f"{name}.{namespace}.svc.{DOMAIN}"
        headless = service["spec"].get("clusterIP") == "None"
        for item in by_service.get(name, []):
            ports = [p for p in item.get("ports") or [] if p.get("name")]
            for endpoint in item.get("endpoints") or []:
                if not (endpoint.get("conditions") or {}).get("ready"):
                    continue
                for address in endpoint.get("addresses") or []:
                    records.add_host(fqdn, address)
                    hostname = endpoint.get("hostname")
                    if not (headless and hostname):
                        continue
                    target = f"{hostname}.{fqdn}"
                    records.add_host(target, address)
                    for port in ports:
                        protocol = str(port.get("protocol", "TCP")).lower()
                        records.srv.append(SrvEntry(f"_{port['name']}._{protocol}.{fqdn}",
                                                    target, int(port["port"])))
    return records


class ClusterDns:
    """Keeps ``dnsmasq`` answering for ``namespace`` as the API changes (a watch on its
    EndpointSlices; Services are re-read with every change)."""

    def __init__(self, api: ApiClient, dnsmasq: Dnsmasq, namespace: str) -> None:
        self.api = api
        self.dnsmasq = dnsmasq
        self.namespace = namespace
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._slices: dict[str, JSON] = {}
        self._thread = threading.Thread(target=self._run, name=f"dns-{namespace}",
                                        daemon=True)

    def start(self) -> ClusterDns:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _publish(self) -> None:
        if self._stop.is_set():
            return
        services = self.api.list("v1", "services", namespace=self.namespace)["items"]
        records = records_for(self.namespace, services, list(self._slices.values()))
        if records != self.dnsmasq.records:
            self.dnsmasq.set_records(records)

    def _run(self) -> None:
        version: str | None = None
        while not self._stop.is_set():
            try:
                if version is None:
                    listed = self.api.list("discovery.k8s.io/v1", "endpointslices",
                                           namespace=self.namespace)
                    self._slices = {s["metadata"]["name"]: s for s in listed["items"]}
                    version = str(listed["metadata"]["resourceVersion"])
                    self._publish()
                for kind, obj in self.api.watch("discovery.k8s.io/v1", "endpointslices",
                                                namespace=self.namespace,
                                                resource_version=version,
                                                timeout_seconds=30):
                    if self._stop.is_set():
                        return
                    if kind == "ERROR":
                        version = None
                        break
                    version = str(obj["metadata"]["resourceVersion"])
                    if kind == "BOOKMARK":
                        continue
                    name = obj["metadata"]["name"]
                    if kind == "DELETED":
                        self._slices.pop(name, None)
                    else:
                        self._slices[name] = obj
                    self._publish()
            except (ApiError, httpx.HTTPError, OSError, DnsmasqError) as exc:
                if self._stop.is_set():
                    return
                self.errors.append(f"{type(exc).__name__}: {exc}")
                version = None
                self._stop.wait(0.5)  # back-off before relisting

    def describe(self) -> Any:
        return self.errors[-5:]
