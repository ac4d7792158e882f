"""The e2e tier: the k8s/ examples played as StatefulSets (player/controller.py)."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.registry import STORES
from player.controller import StatefulSetPlayer
from tests.integration.conftest import require_store

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


@contextlib.contextmanager
def played(example: Path, store: str, tmp_path: Path) -> Iterator[StatefulSetPlayer]:
    """A player for ``example`` (a k8s/ directory running ``store``); its pods, events and
    logs are printed when the test fails; everything is stopped after."""
    require_player()
    require_store(store)
    player = StatefulSetPlayer(example, tmp_path / "sts", overrides=FAST)
    try:
        yield player
    except BaseException:
        print(player.describe())
        raise
    finally:
        player.close()


@pytest.fixture(params=sorted(STORES))
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StatefulSetPlayer]:
    with played(ROOT / "k8s" / request.param, request.param, tmp_path) as player:
        yield player
