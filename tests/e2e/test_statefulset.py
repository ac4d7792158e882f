"""The k8s/ examples for etcd, rqlite and Consul, played as StatefulSets: what `kubectl scale`,
a rolling update and a crashed pod do to the cluster, with a client writing throughout.
Scaling 3→5→3 and a rolling restart are played here with etcd 3.4 and 3.5; with each
example as shipped they are played elsewhere, on the same pod templates: 3→5, a pod
deleted, 5→3 by test_soak's cycle, a rollout by test_helm's upgrade (the chart renders
the examples' templates: tests/static/test_chart.py)."""

from __future__ import annotations

import pytest

from agent.registry import STORES, raft_stores
from player.statefulset import StatefulSetPlayer
from player.wait import wait_until
from player.writer import Writer, writer_for
from tests.e2e.conftest import VIEW_SETTLE_SECONDS
from tests.integration.conftest import ETCD_VARIANTS, variants

pytestmark = pytest.mark.e2e


def names(cluster: StatefulSetPlayer) -> list[str]:
    return sorted(m["name"] for m in cluster.members())


def pods(cluster: StatefulSetPlayer) -> list[str]:
    return sorted(p.name for p in cluster.pods.values())


def wait_voting_members(cluster: StatefulSetPlayer, when: str) -> None:
    """Wait until the membership a ready pod's sidecar reports is the pods played, every
    member a voter: right after a pod turned Ready (joined, promoted) that view may be a
    poll older than what the pod itself sees."""
    def settled() -> bool:
        members = cluster.members()
        found = sorted(m["name"] for m in members)
        not_voting = sorted(m["name"] for m in members if not m["voter"])
        if found == pods(cluster) and not not_voting:
            return True
        raise AssertionError(f"members {found}, not voting {not_voting}, "
                             f"pods {pods(cluster)}")

    wait_until(settled, what=f"members = pods, every one a voter, {when}",
               timeout=VIEW_SETTLE_SECONDS)


def member_ids(cluster: StatefulSetPlayer) -> dict[str, str]:
    """Member name -> member id, as a ready pod's sidecar has the leader's view."""
    return {m["name"]: m["id"] for m in cluster.members()}


def wait_same_members(cluster: StatefulSetPlayer, before: dict[str, str], when: str) -> None:
    """Wait until the members are ``before`` (name -> id) again. Consul names a server by
    its address: one back on a new address is "(unknown)" in the leader's configuration
    until Consul takes the new one, which that pod's readiness waits for; the view asked
    may be a poll older."""
    wait_until(lambda: member_ids(cluster) == before,
               what=f"the same members under the same ids {when}",
               timeout=VIEW_SETTLE_SECONDS)


def leader_url(cluster: StatefulSetPlayer) -> str:
    port = STORES[cluster.example.name].client_port
    return f"http://{cluster.pods[0].ip}:{port}"


def assert_linearizable(writer: Writer) -> None:
    """The writer's history of reads and writes, checked by Porcupine (player.history):
    stronger than no acknowledged write lost, it also catches a stale read."""
    verdict = writer.check_history()
    print(verdict.explain())
    assert verdict.ok, verdict.explain()


@pytest.mark.parametrize("cluster", ETCD_VARIANTS, indirect=True)
def test_scale_up_and_down_with_a_writer(cluster: StatefulSetPlayer) -> None:
    cluster.start(3)
    writer = writer_for(cluster).start()
    try:
        cluster.scale(5)
        wait_voting_members(cluster, "at five")
        cluster.scale(3)  # Parallel: pods 3 and 4 leave at once
        wait_until(lambda: names(cluster) == pods(cluster), what="members = pods",
                   timeout=30)
    finally:
        writer.stop()
    assert writer.acknowledged
    assert writer.lost(leader_url(cluster)) == []
    assert_linearizable(writer)
    reasons = cluster.event_reasons()
    assert reasons.count("MemberRemoved") == 2, reasons


@pytest.mark.parametrize("cluster", ETCD_VARIANTS, indirect=True)
def test_rolling_restart_changes_no_membership(cluster: StatefulSetPlayer) -> None:
    cluster.start(3)
    before = member_ids(cluster)
    writer = writer_for(cluster).start()
    try:
        cluster.rolling_restart()
    finally:
        writer.stop()
    wait_same_members(cluster, before, "after the rolling restart")
    assert writer.lost(leader_url(cluster)) == []
    assert_linearizable(writer)
    assert "MemberRemoved" not in cluster.event_reasons()


def test_killed_pod_is_not_removed_and_returns(cluster: StatefulSetPlayer) -> None:
    cluster.start(3)
    before = member_ids(cluster)
    cluster.kill(1)  # SIGKILL, no preStop: the controller recreates it with its volume
    cluster.wait_ready(1)
    wait_same_members(cluster, before, "with pod 1 back")


@pytest.mark.parametrize("cluster", variants(raft_stores()), indirect=True)
def test_scale_to_one_and_back_with_kept_volumes(cluster: StatefulSetPlayer) -> None:
    cluster.start(3)
    writer = writer_for(cluster).start()
    try:
        cluster.scale(1)
        wait_until(lambda: names(cluster) == pods(cluster), what="a one-member cluster",
                   timeout=30)
        cluster.scale(3)  # the PVCs of pods 1 and 2 are still there
        wait_until(lambda: names(cluster) == pods(cluster), what="members = pods",
                   timeout=30)
    finally:
        writer.stop()
    wait_voting_members(cluster, "with pods 1 and 2 back")
    assert writer.lost(leader_url(cluster)) == []
    assert_linearizable(writer)


@pytest.mark.parametrize("cluster", ["etcd"], indirect=True)
def test_a_statefulset_starting_at_ordinal_one(cluster: StatefulSetPlayer) -> None:
    """`spec.ordinals.start: 1`: pods 1, 2, 3 bootstrap the cluster, then scale 3→4→3.
    Before, the bootstrap set was ordinals 0..2: pods 1 and 2 waited for an etcd-0 that
    never exists."""
    cluster.json_patches = [{"op": "add", "path": "/spec/ordinals", "value": {"start": 1}}]
    cluster.overrides["AGENT_ORDINALS_START"] = "1"
    cluster.start(3)
    assert names(cluster) == ["etcd-1", "etcd-2", "etcd-3"] == pods(cluster)
    writer = writer_for(cluster).start()
    try:
        cluster.scale(4)
        # etcd-4 just turned Ready: the view asked may be a poll older than its join.
        wait_until(lambda: names(cluster) == pods(cluster) == ["etcd-1", "etcd-2", "etcd-3",
                                                               "etcd-4"],
                   what="members = pods = etcd-1..etcd-4", timeout=VIEW_SETTLE_SECONDS)
        cluster.scale(3)
        wait_until(lambda: names(cluster) == pods(cluster), what="members = pods",
                   timeout=30)
    finally:
        writer.stop()
    assert all(m["voter"] for m in cluster.members())
    assert writer.lost(f"http://{cluster.pods[1].ip}:2379") == []
    assert_linearizable(writer)
    assert cluster.event_reasons().count("MemberRemoved") == 1


@pytest.mark.parametrize("cluster", ["etcd", "rqlite"], indirect=True)
def test_power_cut_with_one_volume_lost(cluster: StatefulSetPlayer) -> None:
    """Every pod SIGKILLed at once and pod 0's disk lost; the controller recreates all
    three together. Pod 0's init must not bootstrap or come back under its old entry
    with an empty log: it waits until its peers are back with a leader, which drops
    the old entry, and joins anew, holding every write acknowledged before the cut."""
    cluster.start(3)
    before = member_ids(cluster)
    writer = writer_for(cluster).start()
    try:
        wait_until(lambda: len(writer.acknowledged) >= 20, what="20 acknowledged writes",
                   timeout=60)
        cluster.outage(lose_volumes=(0,))
        cluster.wait_ready(0, 1, 2)
        acknowledged = len(writer.acknowledged)
        wait_until(lambda: len(writer.acknowledged) >= acknowledged + 20,
                   what="20 more acknowledged writes after the outage", timeout=60)
    finally:
        writer.stop()
    init_log = cluster.pods[0].log("init")
    assert "lost its" in init_log, init_log[-3000:]
    wait_voting_members(cluster, "after the power cut")
    after = member_ids(cluster)
    assert sorted(after) == pods(cluster)
    name = f"{cluster.name}-0"
    if cluster.example.name == "etcd":
        assert after[name] != before[name]  # a new member: the old entry went first
    assert writer.lost(leader_url(cluster)) == []
    assert_linearizable(writer)
