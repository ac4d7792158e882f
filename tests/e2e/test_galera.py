"""k8s/galera as shipped on the real control plane, with a writer throughout: three pods
Ready; scaled to 5, rolled, scaled back to 3; then a full outage (galera-2's node shut down
cleanly, more writes, the other two killed and every pod force-deleted): the inits vote,
one of the killed two seeds, the pods come back Ready, and every acknowledged write is on
every pod."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from player.controlplane import ControlPlane
from player.statefulset import StatefulSetPlayer
from player.stores.galera import galera_plan
from player.writer import writer_for
from tests.e2e.conftest import ROOT, more_writes, played

pytestmark = pytest.mark.e2e


@pytest.fixture
def galera(tmp_path: Path, e2e_control_plane: ControlPlane) -> Iterator[StatefulSetPlayer]:
    with played(ROOT / "k8s" / "galera", "galera", tmp_path, e2e_control_plane) as player:
        yield player


def plans(player: StatefulSetPlayer) -> dict[int, str]:
    """Each pod's last init decision (its galera_plan log line): seed or join."""
    found = {}
    for ordinal, pod in player.pods.items():
        plan = galera_plan(pod.log("init"))
        if plan is not None:
            found[ordinal] = str(plan["state"])
    return found


def test_scale_roll_and_power_cut_lose_nothing(galera: StatefulSetPlayer) -> None:
    galera.start(3)
    galera.wait_ready()
    writer = writer_for(galera).start()
    try:
        galera.scale(5)
        galera.rolling_restart()
        galera.scale(3)
        more_writes(writer, 20, "after the scale-down")
        galera.shut_down(2)
        more_writes(writer, 20, "after galera-2 stopped")
        galera.outage()
        galera.wait_ready(timeout=240)
        more_writes(writer, 20, "after the outage")
    finally:
        writer.stop()
    decided = plans(galera)
    assert sorted(decided.values()) == ["join", "join", "seed"], decided
    seed = next(o for o, state in decided.items() if state == "seed")
    assert seed in (0, 1), f"galera-{seed} seeded, but it stopped before the last writes"
    for ordinal, pod in sorted(galera.pods.items()):
        lost = writer.lost(f"mysql://{pod.ip}:3306")
        assert not lost, f"galera-{ordinal} lost {len(lost)} acknowledged writes: {lost[:5]}"
