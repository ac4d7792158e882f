"""Membership repair on the real control plane: a pod whose leave could not happen is
removed by the leader's sidecar once its ordinal is dropped and its pod gone."""

from __future__ import annotations

import time

import pytest

from agent.registry import raft_stores
from player.statefulset import StatefulSetPlayer
from player.wait import wait_until
from player.writer import writer_for
from tests.e2e.test_statefulset import (
    assert_linearizable,
    leader_url,
    names,
    pods,
    wait_voting_members,
)

pytestmark = pytest.mark.e2e

RBAC = "rbac.authorization.k8s.io/v1"


def repaired_event(cluster: StatefulSetPlayer) -> list[str]:
    """The agent's Event reasons once the repair's Event is there: the sidecar posts it
    after it has seen the removal in the leader's view, so the store can show the member
    gone a moment before the Event exists."""
    def posted() -> list[str] | None:
        reasons = cluster.event_reasons()
        return reasons if "StaleMemberRemoved" in reasons else None

    return wait_until(posted, what="the StaleMemberRemoved Event", timeout=30)


@pytest.mark.parametrize("cluster", raft_stores(), indirect=True)
def test_a_pod_that_could_not_read_the_api_at_its_leave_is_repaired(
        cluster: StatefulSetPlayer) -> None:
    """The agent's RoleBinding is gone while pod 2 is scaled away: its leave cannot read
    the StatefulSet, so it stays (a restart is the common case) and the pod goes with
    its member still configured. Once the binding is back, the leader's sidecar sees
    ordinal 2 dropped, its pod gone, its member silent, and removes it."""
    cluster.start(3)
    api = cluster.api
    binding = api.get(RBAC, "rolebindings", "sts-agent", namespace=cluster.namespace)
    assert binding is not None
    writer = writer_for(cluster).start()
    try:
        api.delete(RBAC, "rolebindings", "sts-agent", namespace=cluster.namespace)
        cluster.scale(2)
        # The leave stayed (and could not post its Warning either): pod 2 is gone, its
        # member is not; the repair cannot read the API yet.
        assert len(cluster.members()) == 3
        binding["metadata"] = {k: v for k, v in binding["metadata"].items()
                               if k in ("name", "namespace", "labels")}
        api.create(RBAC, "rolebindings", binding, namespace=cluster.namespace)
        # The manifests' repair wait (AGENT_REPAIR_AFTER_SECONDS, 10 s in this tier) plus
        # a pass, plus Consul's failure detection.
        wait_until(lambda: names(cluster) == pods(cluster), what="members = pods",
                   timeout=90)
    finally:
        writer.stop()
    reasons = repaired_event(cluster)
    assert reasons.count("StaleMemberRemoved") == 1, reasons
    assert "MemberRemoved" not in reasons
    assert writer.acknowledged
    assert writer.lost(leader_url(cluster)) == []
    assert_linearizable(writer)


@pytest.mark.parametrize("cluster", ["consul"], indirect=True)
def test_a_consul_server_back_without_its_volume_has_its_old_entry_removed(
        cluster: StatefulSetPlayer) -> None:
    """Pod 2 dies and its disk is lost; the controller recreates it on a new address, its
    Consul server comes back under a new node ID and Consul adds it, but the old entry
    stays a dead voter (autopilot's dead-server cleanup is off in k8s/consul, to keep
    restarts safe) with no name (no server at its old address). The leader's sidecar,
    having seen that entry as consul-2 before, removes it once consul-2 answers as the
    new member and the old one has been silent for the repair's wait."""
    cluster.start(3)
    before = {m["name"]: m["id"] for m in cluster.members()}
    writer = writer_for(cluster).start()
    try:
        cluster.kill(2, lose_volume=True)

        def repaired() -> bool:
            ids = {m["name"]: m["id"] for m in cluster.members()}
            return (names(cluster) == pods(cluster)
                    and ids.get("consul-2") not in (None, before["consul-2"]))

        wait_until(repaired, what="members = pods, consul-2 under its new id only",
                   timeout=180)
        cluster.wait_ready(timeout=60)
    finally:
        writer.stop()
    # consul-2's new server is a non-voter until autopilot promotes it; consul-2 Ready says
    # it votes, the view asked may be a poll older.
    wait_voting_members(cluster, "with consul-2's new server")
    after = {m["name"]: m["id"] for m in cluster.members()}
    assert after["consul-0"] == before["consul-0"] and after["consul-1"] == before["consul-1"]
    assert after["consul-2"] != before["consul-2"]
    reasons = repaired_event(cluster)
    assert reasons.count("StaleMemberRemoved") == 1, reasons
    assert writer.lost(leader_url(cluster)) == []
    assert_linearizable(writer)


@pytest.mark.parametrize("how", ["deleted", "power cut"])
@pytest.mark.parametrize("cluster", ["consul"], indirect=True)
def test_every_consul_pod_gone_at_once_comes_back_with_its_data(
        cluster: StatefulSetPlayer, how: str) -> None:
    """A node-pool upgrade (every Consul pod deleted at once: preStop, SIGTERM) or a
    power cut (every pod SIGKILLed, then force-deleted): each comes back with its
    volume on a new address, the raft configuration listing only the old ones. Consul
    (raft protocol 3) dials peers by node ID through the addresses serf learns, so the
    servers elect a leader with their data; no member is removed or added, and the
    repair has nothing to do."""
    cluster.start(3)
    before = {m["name"]: m["id"] for m in cluster.members()}
    addresses = {p.ordinal: p.ip for p in cluster.pods.values()}
    writer = writer_for(cluster).start()
    try:
        started = time.monotonic()
        if how == "deleted":
            cluster.delete_pod(0, 1, 2)
        else:
            cluster.outage()
        cluster.wait_ready(timeout=300)
        print(f"every pod {how}: all Ready again after "
              f"{time.monotonic() - started:.1f} s")
        assert all(p.ip != addresses[p.ordinal] for p in cluster.pods.values())
        wait_until(lambda: {m["name"]: m["id"] for m in cluster.members()} == before,
                   what="the same members under the same ids", timeout=60)
    finally:
        writer.stop()
    reasons = cluster.event_reasons()
    assert "StaleMemberRemoved" not in reasons and "MemberRemoved" not in reasons, reasons
    assert writer.lost(leader_url(cluster)) == []
    assert_linearizable(writer)
