"""The image tier: the images of `make images` run by containerd as the k8s/ examples run
them: their users, read-only roots, no capabilities, and volumes owned as fsGroup makes them."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from player.dns import Dnsmasq, Records, statefulset_records
from player.netns import Network
from player.podrun import DOMAIN, NAMESPACE, ROOT, Pod
from player.runtime import Containerd
from tests.conftest import missing

__all__ = ["ROOT", "Pod"]


def require_runtime() -> None:
    """containerd, ctr and runc, as root (a private containerd, network namespaces)."""
    absent = [name for name in ("containerd", "ctr", "runc", "ip") if not shutil.which(name)]
    problem = (f"not installed: {', '.join(absent)}" if absent
               else "containerd needs root" if os.geteuid() != 0 else None)
    if problem is not None:
        missing(problem)


@pytest.fixture(scope="session")
def containerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Containerd]:
    """One containerd per test worker, its root and socket private."""
    require_runtime()
    with Containerd(tmp_path_factory.mktemp("containerd")) as runtime:
        yield runtime


@pytest.fixture(scope="session")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Network, Dnsmasq]]:
    """A bridge with a network namespace per pod (the pods' addresses never meet the
    host's or another worker's), and the cluster DNS on its gateway: a pod's names answer,
    any other cluster name is an instant NXDOMAIN, as CoreDNS answers for a lone pod."""
    require_runtime()
    net = Network().up()
    dns = Dnsmasq(tmp_path_factory.mktemp("dns"), listen=net.gateway, port=53,
                  domains=(DOMAIN,))
    try:
        dns.start()
        yield net, dns
    finally:
        dns.close()
        net.down()


@pytest.fixture
def pod(network: tuple[Network, Dnsmasq], tmp_path: Path) -> Iterator[Any]:
    """A factory: ``pod("etcd")`` is pod 0 of k8s/etcd in a network namespace of its own,
    its names in the cluster DNS (its headless Service answers with it alone)."""
    net, dns = network
    made: list[str] = []

    def make(example: str, ordinal: int = 0) -> Pod:
        name = f"{example}-{ordinal}-{len(made)}"
        netns, address = net.add_pod(name, search=[], hostname=name)
        made.append(netns)
        made_pod = Pod(example, tmp_path / name, netns, address, net.gateway, ordinal)
        dns.set_records(statefulset_records(
            statefulset=made_pod.statefulset["metadata"]["name"], service=made_pod.service,
            namespace=NAMESPACE, domain=DOMAIN, pods={ordinal: address}))
        return made_pod

    yield make
    dns.set_records(Records())
    for netns in made:
        net.remove_pod(netns)
