"""k8s/exec-galera as shipped on the real control plane, with a writer throughout: three pods
Ready through the hooks alone (tini -- sts-agent run starting mariadbd by seed.sh or
start.sh); scaled to 4 and back to 3 (stop.sh on the scale-down only); then a full outage
(exec-galera-2's node shut down cleanly, more writes, the other two killed and every pod
force-deleted): the inits vote on sequence.sh, one of the killed two seeds, the pods come
back Ready, and every acknowledged write is on every pod."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from player.controlplane import ControlPlane
from player.statefulset import StatefulSetPlayer
from player.stores.base import last_event
from player.writer import writer_for
from tests.e2e.conftest import ROOT, more_writes, played

pytestmark = pytest.mark.e2e


@pytest.fixture
def exec_galera(tmp_path: Path, e2e_control_plane: ControlPlane
                ) -> Iterator[StatefulSetPlayer]:
    with played(ROOT / "k8s" / "exec-galera", "exec", tmp_path, e2e_control_plane) as player:
        yield player


def plans(player: StatefulSetPlayer) -> dict[int, str]:
    """Each pod's last init decision (its exec_plan log line): seed or primary."""
    found = {}
    for ordinal, pod in player.pods.items():
        plan = last_event(pod.log("init"), "exec_plan")
        if plan is not None:
            found[ordinal] = str(plan["role"])
    return found


def test_hooks_alone_scale_and_survive_a_power_cut(exec_galera: StatefulSetPlayer) -> None:
    player = exec_galera
    player.start(3)
    player.wait_ready()
    assert sorted(plans(player).values()) == ["primary", "primary", "seed"]
    writer = writer_for(player).start()
    try:
        player.scale(4)
        more_writes(writer, 10, "at four")
        player.scale(3)
        # exec-galera-3 ran stop.sh (the scale-down's leave), and only it: a Normal Event.
        assert player.event_reasons().count("MemberStopped") == 1, player.event_reasons()
        more_writes(writer, 20, "after the scale-down")
        player.shut_down(2)
        more_writes(writer, 20, "after exec-galera-2 stopped")
        player.outage()
        player.wait_ready(timeout=240)
        more_writes(writer, 20, "after the outage")
    finally:
        writer.stop()
    # The outage's deletions and the shut-down node were no scale-down: no stop.sh.
    assert player.event_reasons().count("MemberStopped") == 1, player.event_reasons()
    decided = plans(player)
    assert sorted(decided.values()) == ["primary", "primary", "seed"], decided
    seed = next(o for o, role in decided.items() if role == "seed")
    assert seed in (0, 1), f"exec-galera-{seed} seeded, but it stopped before the last writes"
    for ordinal, pod in sorted(player.pods.items()):
        lost = writer.lost(f"mysql://{pod.ip}:3306")
        assert not lost, f"exec-galera-{ordinal} lost {len(lost)} acknowledged writes: {lost[:5]}"
