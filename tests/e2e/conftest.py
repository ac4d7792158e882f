"""The e2e tier: the k8s/ examples applied to the real control plane, their pods played
on this host (player/statefulset.py)."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.registry import STORES
from player.controlplane import ControlPlane
from player.statefulset import StatefulSetPlayer
from tests.integration.conftest import require_control_plane, require_store

ROOT = Path(__file__).resolve().parents[2]
# Quicker polls than the manifests' defaults, so the tests spend less time waiting;
# everything else is the manifests' own.
FAST = {"AGENT_POLL_INTERVAL_SECONDS": "0.5"}


def require_player() -> None:
    """Network namespaces and bind mounts need root and iproute2."""
    problem = None
    if os.geteuid() != 0:
        problem = "the StatefulSet player needs root (network namespaces, bind mounts)"
    elif not shutil.which("ip"):
        problem = "ip (iproute2) is not installed"
    if problem is not None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(problem)
        pytest.skip(problem)


@pytest.fixture(scope="session")
def e2e_control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """The whole control plane (API server, controllers, scheduler), shared by the e2e
    tests; each test plays its example in a namespace of its own."""
    require_player()
    require_control_plane()
    with ControlPlane(tmp_path_factory.mktemp("e2e-control-plane")) as plane:
        yield plane


_played = itertools.count(1)


@contextlib.contextmanager
def played(example: Path, store: str, tmp_path: Path,
           control_plane: ControlPlane) -> Iterator[StatefulSetPlayer]:
    """A player for ``example`` (a k8s/ directory running ``store``) in a namespace of its
    own; its pods, events and logs are printed when the test fails; everything is
    stopped after."""
    require_player()
    require_store(store)
    namespace = f"{store}-{next(_played)}"
    player = StatefulSetPlayer(example, tmp_path / "sts", overrides=FAST,
                               control_plane=control_plane, namespace=namespace)
    try:
        yield player
    except BaseException:
        print(player.describe())
        raise
    finally:
        player.close()


@pytest.fixture(params=sorted(STORES))
def cluster(request: pytest.FixtureRequest, tmp_path: Path,
            e2e_control_plane: ControlPlane) -> Iterator[StatefulSetPlayer]:
    with played(ROOT / "k8s" / request.param, request.param, tmp_path,
                e2e_control_plane) as player:
        yield player
