"""Real peers for integration tests: a missing one fails under CI=true, else skips."""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from player.agentnamespace import AgentNamespace
from player.controlplane import ControlPlane
from player.dns import Dnsmasq
from tests.conftest import missing, required
from tests.integration.kubeproxy import KubeFaultProxy

if TYPE_CHECKING:
    from player.pods import InitPods
    from player.stores.base import Harness

pytestmark = pytest.mark.integration


def require_binary(name: str, *fallbacks: str) -> str:
    """Path of ``name``; under CI=true its absence fails the test instead of skipping it."""
    found = shutil.which(name) or next((f for f in fallbacks if Path(f).exists()), None)
    if found:
        return found
    message = f"{name} is not installed (the README's test command installs it)"
    missing(message)


@pytest.fixture
def dnsmasq(tmp_path: Path) -> Iterator[Dnsmasq]:
    """A dnsmasq on 127.0.53.1 (random port) answering for cluster.local and k8s.example."""
    binary = require_binary("dnsmasq", "/usr/sbin/dnsmasq")
    server = Dnsmasq(tmp_path / "dns", domains=("cluster.local", "k8s.example"), binary=binary)
    with server:
        yield server


def require_store(store: str, tag: str = "") -> None:
    """Fail (CI) or skip when a program of ``store``'s images (at image tag ``tag``, e.g.
    ``v3.5`` for etcd 3.5) is missing."""
    from player.stores import store_module

    for image in store_module(store).IMAGES.values():
        for program in image.binaries.values():
            required(functools.partial(program, tag))


H = TypeVar("H", bound="Harness[Any]")


@contextmanager
def ready_cluster(harness: H, count: int = 3) -> Iterator[H]:
    """``count`` store nodes with a sidecar each, all ready; the nodes' logs printed when
    the test fails, everything stopped after it."""
    try:
        harness.start(count)
        for sidecar in harness.sidecars.values():
            sidecar.wait_ready(timeout=60)
        yield harness
    except BaseException:
        print(harness.logs())
        raise
    finally:
        harness.close()


def require_control_plane() -> None:
    """The control plane needs root (it adds its API address to the host) and the pinned
    Kubernetes binaries and its etcd (scripts/build_peers.sh)."""
    from player.controlplane import etcd_binary, kubernetes_binary

    if os.geteuid() != 0:
        missing("the control plane needs root (its API address on the host)")
    required(functools.partial(kubernetes_binary, "kube-apiserver"))
    required(etcd_binary)


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """etcd and the real kube-apiserver (no controllers: the integration tier only reads,
    scales and posts), shared by the session."""
    require_control_plane()
    with ControlPlane(tmp_path_factory.mktemp("control-plane"), components=()) as plane:
        yield plane


@pytest.fixture
def agent_namespace(control_plane: ControlPlane, tmp_path: Path) -> Iterator[AgentNamespace]:
    """A fresh namespace with the agent's ServiceAccount, Role and a token file."""
    namespace = AgentNamespace(control_plane, tmp_path / "kube")
    yield namespace
    namespace.delete()


@pytest.fixture
def kube_proxy(control_plane: ControlPlane) -> Iterator[KubeFaultProxy]:
    """A fault proxy in front of the API server."""
    proxy = KubeFaultProxy(control_plane).start()
    yield proxy
    proxy.stop()


# The etcd versions played besides the default (k8s/etcd ships 3.6): the matrix tests
# run each as a store variant of its own, "etcd@3.4", "etcd@3.5".
ETCD_MATRIX = ("3.4", "3.5")
ETCD_VARIANTS = [f"etcd@{version}" for version in ETCD_MATRIX]


def variants(stores: Iterable[str]) -> list[str]:
    """Test parameters: each store, and etcd once more per version of the matrix."""
    found = sorted(stores)
    if "etcd" in found:
        found += ETCD_VARIANTS
    return found


def split_variant(variant: str) -> tuple[str, str]:
    """``etcd@3.5`` -> (``etcd``, ``3.5``); a plain store name -> (name, "")."""
    store, _, version = variant.partition("@")
    return store, version


def harness_for(variant: str, workdir: Path, **options: Any) -> Harness[Any]:
    """The harness of a store variant, its programs required (fail under CI, else skip)."""
    from player.stores import harness_class

    store, version = split_variant(variant)
    require_store(store, f"v{version}" if version else "")
    if version:
        options["version"] = version
    return harness_class(store)(workdir, **options)


@contextmanager
def parallel_statefulset(control_plane: ControlPlane, workdir: Path, name: str
                         ) -> Iterator[AgentNamespace]:
    """The agent's namespace with StatefulSet ``name`` (Parallel, 3 replicas): what the
    votes and the leave read from the API."""
    created = AgentNamespace(control_plane, workdir)
    created.add_statefulset(name, replicas=3, pod_management="Parallel")
    try:
        yield created
    finally:
        created.delete()


@contextmanager
def ready_pods(harness: Harness[Any], namespace: AgentNamespace, workdir: Path,
               ordinals: tuple[int, ...]) -> Iterator[InitPods]:
    """``harness.store``'s pods behind cluster DNS (dnsmasq), started at once through
    init, every one Ready; their logs printed when a test fails."""
    from player.pods import InitPods

    binary = require_binary("dnsmasq", "/usr/sbin/dnsmasq")
    with Dnsmasq(workdir / "dns", domains=("cluster.local",), binary=binary) as dns:
        with InitPods(harness.store, workdir / "pods", dns, harness=harness,
                      namespace=namespace.name, env=namespace.env()) as pods:
            pods.start(*ordinals)
            pods.wait_ready(*ordinals)
            yield pods


def voting_pods(statefulset: str, harness: Callable[[Path], Harness[Any]], *,
                requires: Callable[[], object]) -> tuple[Any, Any]:
    """The module-scoped ``namespace`` and ``pods`` fixtures of a module whose three pods
    of StatefulSet ``statefulset`` (Parallel, 3 replicas, read by the vote and the leave)
    start at once through init, every one Ready: ``namespace, pods = voting_pods(...)``.
    ``requires`` fails (CI) or skips when the store's programs are missing."""

    @pytest.fixture(scope="module")
    def namespace(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[AgentNamespace]:
        with parallel_statefulset(control_plane, tmp_path_factory.mktemp(f"{statefulset}-kube"),
                                  statefulset) as created:
            yield created

    @pytest.fixture(scope="module")
    def pods(namespace: AgentNamespace, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[InitPods]:
        requires()
        workdir = tmp_path_factory.mktemp(statefulset)
        with ready_pods(harness(workdir), namespace, workdir, (0, 1, 2)) as started:
            yield started

    return namespace, pods
