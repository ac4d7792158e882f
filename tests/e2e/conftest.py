"""The e2e tier: the k8s/ examples applied to the real control plane, their pods run by a
real node on this host (player/statefulset.py, player/realnode.py)."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from agent.registry import raft_stores
from player.controlplane import ControlPlane
from player.realnode import CNI_PLUGINS, coredns_binary, kubelet_binary
from player.registry import STORAGE
from player.statefulset import API_POLL_SECONDS, StatefulSetPlayer
from player.wait import polling_every, wait_until
from player.writer import Writer
from tests.conftest import missing, required
from tests.integration.conftest import require_control_plane, require_store, split_variant

ROOT = Path(__file__).resolve().parents[2]
# Quicker polls and a shorter repair wait than the manifests' defaults, so the tests
# spend less time waiting (and every scenario runs with a repair that would act within
# seconds on a wrong reading); everything else is the manifests' own.
FAST = {"AGENT_POLL_INTERVAL_SECONDS": "0.5", "AGENT_REPAIR_AFTER_SECONDS": "10"}
# The membership a ready pod's sidecar reports (StatefulSetPlayer.members) is the leader's
# view as of that sidecar's last poll (FAST: every 0.5 s), so right after another pod
# turned Ready it may not yet show what that pod already sees (its join, its promotion to
# voter). Waits for it to follow: one poll, or an election (1 s in every example: etcd's
# and rqlite's election timeout, Consul's raft_multiplier 1) and a poll after it, many
# times over on a loaded two-core host.
VIEW_SETTLE_SECONDS = 30.0


def require_player() -> None:
    """A node's bridge, cgroups and containers need root and iproute2."""
    problem = None
    if os.geteuid() != 0:
        problem = "the StatefulSet player needs root (a node's bridge, cgroups, containers)"
    elif not shutil.which("ip"):
        problem = "ip (iproute2) is not installed"
    if problem is not None:
        missing(problem)


def require_real_node() -> None:
    """The kubelet and CoreDNS built, containerd, the CNI plugins and the registry
    installed, the images published (make images)."""
    require_control_plane()
    required(kubelet_binary)
    required(coredns_binary)
    problem = None
    if not shutil.which("containerd"):
        problem = "containerd is not installed (Debian package containerd)"
    if problem is None and not (CNI_PLUGINS / "bridge").exists():
        problem = "the bridge CNI plugin is not installed (containernetworking-plugins)"
    if problem is None and not shutil.which("docker-registry"):
        problem = "docker-registry is not installed (Debian package docker-registry)"
    if problem is None and not (STORAGE / "published").is_dir():
        problem = "the images are not built and published (make images)"
    if problem is not None:
        missing(problem)


@pytest.fixture(autouse=True)
def api_polls() -> Iterator[None]:
    """The e2e tier's waits poll at the API's pace (their checks list pods from the API
    server and ask sidecars), unless a wait says otherwise."""
    with polling_every(API_POLL_SECONDS):
        yield


@pytest.fixture(scope="session")
def e2e_control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """The whole control plane (API server, controllers, scheduler), shared by the e2e
    tests; each test plays its example in a namespace of its own."""
    require_player()
    require_control_plane()
    with ControlPlane(tmp_path_factory.mktemp("e2e-control-plane")) as plane:
        yield plane


def in_namespace(example: Path, namespace: str, workdir: Path) -> Path:
    """An overlay of ``example`` that sets its namespace only (what a user's own
    kustomization does first)."""
    overlay = workdir / "overlay"
    overlay.mkdir(parents=True)
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [os.path.relpath(example, overlay)], "namespace": namespace}))
    return overlay


_played = itertools.count(1)


def etcd_images(version: str) -> dict[str, str]:
    """The kustomize ``images:`` that run etcd ``version`` in k8s/etcd."""
    from player.stores.etcd import IMAGES, image_tag

    return {name: image_tag(version) for name in IMAGES}


@contextlib.contextmanager
def played(example: Path, variant: str, tmp_path: Path, control_plane: ControlPlane,
           images: dict[str, str] | None = None, nodes: int = 1,
           env: dict[str, str] | None = None) -> Iterator[StatefulSetPlayer]:
    """A player for ``example`` (a k8s/ directory running a store, or an etcd version of
    the matrix: ``etcd@3.5``) in a namespace of its own, on ``nodes`` nodes of its own,
    the agent's containers given FAST and ``env``; its pods, events and logs are printed
    when the test fails; everything is stopped after."""
    store, version = split_variant(variant)
    images = dict(images or {})
    if version:
        images.update(etcd_images(version))
    require_player()
    require_real_node()
    for tag in {"", *images.values()}:
        require_store(store, tag)
    namespace = f"{store}-{next(_played)}"
    player = StatefulSetPlayer(example, tmp_path / "sts", overrides={**FAST, **(env or {})},
                               control_plane=control_plane, namespace=namespace,
                               images=images, nodes=nodes)
    try:
        yield player
    except BaseException:
        print(player.describe())
        raise
    finally:
        player.close()


@pytest.fixture(params=raft_stores())
def cluster(request: pytest.FixtureRequest, tmp_path: Path,
            e2e_control_plane: ControlPlane) -> Iterator[StatefulSetPlayer]:
    """A store's example (or an etcd version of the matrix, where a test parametrizes
    ``cluster`` with ``variants``), not started."""
    store, _ = split_variant(request.param)
    with played(ROOT / "k8s" / store, request.param, tmp_path, e2e_control_plane) as player:
        yield player


def more_writes(writer: Writer, count: int, what: str) -> None:
    """Wait until the writer has ``count`` more acknowledged writes (named ``what``)."""
    before = len(writer.acknowledged)
    wait_until(lambda: len(writer.acknowledged) >= before + count,
               what=f"{count} writes acknowledged {what}", timeout=60)
