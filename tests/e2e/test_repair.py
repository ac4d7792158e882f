"""Membership repair on the real control plane: a pod whose leave could not happen is
removed by the leader's sidecar once its ordinal is dropped and its pod gone."""

from __future__ import annotations

import pytest

from agent.registry import STORES
from player.statefulset import StatefulSetPlayer
from player.wait import wait_until
from player.writer import writer_for
from tests.e2e.test_statefulset import assert_linearizable, leader_url, names, pods

pytestmark = pytest.mark.e2e

RBAC = "rbac.authorization.k8s.io/v1"


@pytest.mark.parametrize("cluster", sorted(STORES), indirect=True)
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
    reasons = cluster.event_reasons()
    assert reasons.count("StaleMemberRemoved") == 1, reasons
    assert "MemberRemoved" not in reasons
    assert writer.acknowledged
    assert writer.lost(leader_url(cluster)) == []
    assert_linearizable(writer)
