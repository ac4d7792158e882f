"""k8s/native-sidecar/: the agent as a native sidecar, stopped only after the store, still
removes a scaled-down member (the store's preStop is the trigger) and keeps a restarted one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.registry import raft_stores
from player.controlplane import ControlPlane
from player.realpods import RealPod
from player.statefulset import StatefulSetPlayer
from player.wait import wait_until
from player.writer import writer_for
from tests.e2e.conftest import ROOT, played
from tests.e2e.test_statefulset import leader_url, names, pods, wait_same_members

pytestmark = pytest.mark.e2e


@pytest.fixture(params=raft_stores())
def native(request: pytest.FixtureRequest, tmp_path: Path,
           e2e_control_plane: ControlPlane) -> Iterator[StatefulSetPlayer]:
    with played(ROOT / "k8s" / "native-sidecar" / request.param, request.param,
                tmp_path, e2e_control_plane) as player:
        yield player


def hook_answers(pod: RealPod) -> list[str]:
    """The leave results the store container's preStop (GET /leave/wait) was answered,
    as the agent logged each answer."""
    log = pod.log("agent")
    return [str(json.loads(line)["result"]) for line in log.splitlines()
            if '"leave_wait_answered"' in line]


def test_scale_down_removes_and_restart_keeps(native: StatefulSetPlayer) -> None:
    sidecars = [c for c in native.example.pod_spec["initContainers"]
                if c.get("restartPolicy") == "Always"]
    assert [c["name"] for c in sidecars] == ["agent"]  # the overlay is what is played
    native.start(3)
    before = {m["name"]: m["id"] for m in native.members()}
    writer = writer_for(native).start()
    try:
        restarted = native.pods[1]
        native.delete_pod(1)  # a restart: the store's hook fires, the agent decides to stay
        native.wait_ready(1)
        assert hook_answers(restarted) == ["stayed"], restarted.log("agent")[-3000:]
        wait_same_members(native, before, "with pod 1 back")
        assert "MemberRemoved" not in native.event_reasons()
        leaving = native.pods[2]
        native.scale(2)  # the store's hook starts the leave; pod 2 is out before it goes
        # Removed while the store still ran: the store's own hook got the outcome.
        assert hook_answers(leaving) == ["removed"], leaving.log("agent")[-3000:]
        wait_until(lambda: names(native) == pods(native), what="members = pods",
                   timeout=30)
    finally:
        writer.stop()
    assert writer.acknowledged
    assert writer.lost(leader_url(native)) == []
    assert native.event_reasons().count("MemberRemoved") == 1
