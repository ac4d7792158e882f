"""The soak's bounded CI variant: one whole cycle per store (scale 3→5, a pod deleted and
back, 5→3: pods 3 and 4 leave at once) with a writer; `make soak` runs cycles for 30
minutes (SOAK_MINUTES)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.registry import raft_stores
from player.controlplane import ControlPlane
from player.soak import soak
from tests.e2e.conftest import FAST, require_player
from tests.integration.conftest import require_store

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("store", raft_stores())
def test_one_soak_cycle(store: str, tmp_path: Path, e2e_control_plane: ControlPlane) -> None:
    require_player()
    require_store(store)
    result = soak(store, tmp_path / "sts", seconds=0, overrides=FAST,
                  control_plane=e2e_control_plane, namespace=f"soak-{store}")
    print(result.summary())
    assert result.cycles == 1 and len(result.steps) == 3
    assert result.membership_mismatches == []
    assert result.removals == 2, "the scale-down's two members removed, not the restart's"
    assert result.acknowledged > 0 and result.lost == 0
    assert result.history is not None and result.history.ok, result.history
    assert result.ok, result.summary()
