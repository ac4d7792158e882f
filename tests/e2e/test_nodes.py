"""Three real nodes under one control plane: each example's anti-affinity puts its members
one to a node, and a drained node (its maintenance: `kubectl drain`, the Eviction API under
the PodDisruptionBudget) is a restart of the member it held, never a scale-down; a client
writes throughout. A lost node (the machine gone with its disks) has its member made anew
on another node, in the operator's documented steps."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.registry import raft_stores
from player.controlplane import ControlPlane
from player.statefulset import StatefulSetPlayer
from player.wait import wait_until
from player.writer import writer_for
from tests.e2e.conftest import ROOT, VIEW_SETTLE_SECONDS, more_writes, played
from tests.e2e.test_faults import leader_ordinal
from tests.e2e.test_statefulset import assert_linearizable, leader_url
from tests.integration.conftest import split_variant

pytestmark = pytest.mark.e2e

NODES = 3
# The scheduler's verdict on a pod it cannot place (a cordoned node holding its volume).
SCHEDULED_SECONDS = 30.0
# Back on its uncordoned node: pulled, started, caught up, Ready (Consul's restart is the
# slowest, about 45 s on a loaded two-core host: BENCHMARKS.md).
BACK_SECONDS = 240.0


@pytest.fixture(params=raft_stores())
def spread(request: pytest.FixtureRequest, tmp_path: Path,
           e2e_control_plane: ControlPlane) -> Iterator[StatefulSetPlayer]:
    """A store's example on three nodes of its own, not started."""
    store, _ = split_variant(request.param)
    with played(ROOT / "k8s" / store, request.param, tmp_path, e2e_control_plane,
                nodes=NODES) as player:
        yield player


def unschedulable(cluster: StatefulSetPlayer, ordinal: int, uid: str) -> str | None:
    """The scheduler's message when pod ``ordinal``'s successor of ``uid`` is Pending
    and cannot be placed; None before."""
    pod = cluster.api_pods().get(ordinal)
    if pod is None or pod["metadata"]["uid"] == uid:
        return None
    assert not pod["spec"].get("nodeName"), f"{pod['metadata']['name']} was scheduled"
    for condition in pod.get("status", {}).get("conditions") or []:
        if condition["type"] == "PodScheduled" and condition.get("reason") == "Unschedulable":
            return str(condition.get("message", ""))
    return None


def test_a_drained_node_is_a_restart_of_its_member(spread: StatefulSetPlayer) -> None:
    cluster = spread.start(3)
    homes = {o: cluster.node_of(o) for o in range(3)}
    assert len({node.name for node in homes.values()}) == NODES, (
        f"the anti-affinity spreads the members: {[n.name for n in homes.values()]}")
    before = {m["name"]: m["id"] for m in cluster.members()}
    leader = leader_ordinal(cluster)
    node = homes[leader]
    uid = cluster.pods[leader].uid
    writer = writer_for(cluster).start()
    try:
        more_writes(writer, 10, "before the drain")
        assert cluster.drain(node) == [leader]
        message = wait_until(lambda: unschedulable(cluster, leader, uid),
                             what=f"pod {leader}'s successor Pending, its volume's node "
                                  "cordoned", timeout=SCHEDULED_SECONDS)
        # The member is away, not gone: the others keep it and take writes.
        assert {m["name"] for m in cluster.members()} == set(before)
        more_writes(writer, 20, "while the drained node's member is away")
        cluster.uncordon(node)
        cluster.wait_ready(timeout=BACK_SECONDS)
        more_writes(writer, 10, "with the member back")
    finally:
        writer.stop()
    print(f"drained {node.name} (pod {leader}, the leader): its successor waited "
          f"({message}); {len(writer.acknowledged)} writes acknowledged")
    assert cluster.node_of(leader) is node
    assert {m["name"]: m["id"] for m in cluster.members()} == before
    assert writer.lost(leader_url(cluster)) == []
    assert_linearizable(writer)
    assert "MemberRemoved" not in cluster.event_reasons()


def test_a_lost_node_has_its_member_made_anew_on_another(spread: StatefulSetPlayer) -> None:
    """The leader's machine is gone: the two others elect a leader and take writes; once
    the node is declared out of service and its claims deleted, the member's successor
    starts on a running node with an empty volume and joins in its place."""
    cluster = spread.start(3)
    before = {m["name"]: m["id"] for m in cluster.members()}
    leader = leader_ordinal(cluster)
    node = cluster.node_of(leader)
    writer = writer_for(cluster).start()
    try:
        more_writes(writer, 10, "before the node is lost")
        assert cluster.lose_node(node) == [leader]
        more_writes(writer, 20, "by the two members left")
        cluster.wait_ready(timeout=BACK_SECONDS)
        more_writes(writer, 10, "with the new member")
    finally:
        writer.stop()
    home = cluster.node_of(leader)
    print(f"lost {node.name} (pod {leader}, the leader): made anew on {home.name}; "
          f"{len(writer.acknowledged)} writes acknowledged")
    assert home is not node
    wait_until(lambda: {m["name"] for m in cluster.members()} == set(before),
               what=f"the members named as before, pod {leader}'s anew",
               timeout=VIEW_SETTLE_SECONDS)
    after = {m["name"]: m["id"] for m in cluster.members()}
    assert {k: v for k, v in after.items() if not k.startswith(f"{cluster.name}-{leader}")} \
        == {k: v for k, v in before.items() if not k.startswith(f"{cluster.name}-{leader}")}
    assert writer.lost(leader_url(cluster)) == []
    assert_linearizable(writer)
