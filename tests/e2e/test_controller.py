"""What only the real StatefulSet controller plays, with a writer throughout:
a partitioned rolling update, a drain through the Eviction API and the PodDisruptionBudget,
a scale-down undone while its pods still terminate, OrderedReady waiting for an unready
pod before it scales down, the StatefulSet deleted and re-created, the namespace deleted."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from player.controlplane import ControlPlane
from player.statefulset import StatefulSetPlayer
from player.wait import wait_until
from player.writer import writer_for
from tests.e2e.conftest import ROOT, VIEW_SETTLE_SECONDS, played
from tests.e2e.test_statefulset import leader_url, names, pods, wait_voting_members

pytestmark = pytest.mark.e2e

# What these tests play is the controller's (partitions, evictions, OrderedReady, a
# scale-down undone), the same for every store: they run on etcd and rqlite. Consul's
# part in a restart (a server back on a new address, about a minute a pod) is played by
# test_statefulset's rolling restart and killed pod, the native sidecar and the soak; here
# it made the two slowest tests of the suite (275 s and 96 s) and showed nothing more.
CONTROLLER_STORES = pytest.mark.parametrize("cluster", ["etcd", "rqlite"], indirect=True)


def identities(cluster: StatefulSetPlayer) -> dict[str, str]:
    """Member name -> member id, as the leader has them."""
    return {m["name"]: m["id"] for m in cluster.members()}


def keeps(cluster: StatefulSetPlayer, before: dict[str, str], what: str) -> None:
    wait_until(lambda: identities(cluster) == before, what=f"the same members {what}",
               timeout=60)


def removals(cluster: StatefulSetPlayer) -> int:
    return cluster.event_reasons().count("MemberRemoved")


@CONTROLLER_STORES
def test_partitioned_rollout_drain_and_a_scale_down_undone(cluster: StatefulSetPlayer) -> None:
    cluster.start(3)
    before = identities(cluster)
    writer = writer_for(cluster).start()
    try:
        # A rolling update with a partition: only ordinal 2 gets the new template.
        old = cluster.revisions()
        cluster.patch({"spec": {"updateStrategy": {"type": "RollingUpdate",
                                                   "rollingUpdate": {"partition": 2}}}})
        cluster.kubectl("rollout", "restart", f"statefulset/{cluster.name}")

        def only_two_updated() -> bool:
            status = cluster.statefulset().get("status", {})
            new, revisions = status.get("updateRevision"), cluster.revisions()
            return (new is not None and new != old[0] and revisions.get(2) == new
                    and revisions.get(0) == old[0] and revisions.get(1) == old[1]
                    and status.get("readyReplicas") == 3)

        wait_until(only_two_updated, what="ordinal 2 on the new template, 0 and 1 on the "
                   "old, all Ready", timeout=180)
        keeps(cluster, before, "after the partitioned update")
        cluster.patch({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}})
        cluster.wait_rolled_out()
        keeps(cluster, before, "after the whole rollout")

        # A drain: the Eviction API takes one pod; the PDB refuses a second until the
        # first is back and Ready, as `kubectl drain` finds it. The PDB's
        # disruptionsAllowed is the disruption controller's count, made after it sees the
        # rollout's last pod Ready: until then the first eviction is refused too.
        wait_until(lambda: cluster.evict(0)[0] == 201, what="the PDB to allow evicting pod 0",
                   timeout=60)
        # The eviction took pod 0 out of disruptionsAllowed in the same request.
        refused, message = cluster.evict(1)
        assert refused == 429, message
        assert "disruption budget" in message, message
        cluster.wait_ready(0)
        wait_until(lambda: cluster.evict(1)[0] == 201, what="the PDB to allow evicting pod 1",
                   timeout=120)
        cluster.wait_ready(1)
        keeps(cluster, before, "after the drain")
        assert removals(cluster) == 0

        # Scale 3→5, then 5→3 undone while pod 4 still terminates.
        cluster.scale(5)
        cluster.kubectl("scale", f"statefulset/{cluster.name}", "--replicas=3")
        wait_until(lambda: cluster.api_pods()[4]["metadata"].get("deletionTimestamp"),
                   what="pod 4 terminating", timeout=60)
        cluster.scale(5)
        wait_until(lambda: names(cluster) == pods(cluster), what="members = pods",
                   timeout=120)
        wait_voting_members(cluster, "at five again")
    finally:
        writer.stop()
    print(f"FIGURE {cluster.name} rollout/drain/rescale: {len(writer.acknowledged)} writes "
          f"acknowledged, longest wait {writer.longest_gap:.1f} s, "
          f"{removals(cluster)} MemberRemoved")
    assert writer.acknowledged
    assert writer.lost(leader_url(cluster)) == []


@CONTROLLER_STORES
def test_ordered_ready_waits_for_an_unready_pod_then_the_set_goes_and_returns(
        cluster: StatefulSetPlayer) -> None:
    cluster.start(3)
    writer = writer_for(cluster).start()
    try:
        # podManagementPolicy cannot change: the StatefulSet is deleted leaving its pods
        # (cascade orphan) and re-created as OrderedReady, which adopts them.
        uids = {o: p["metadata"]["uid"] for o, p in cluster.api_pods().items()}
        cluster.delete_statefulset(cascade="orphan")
        wait_until(lambda: cluster.control_plane.client().get(
            "apps/v1", "statefulsets", cluster.name, namespace=cluster.namespace) is None,
            what="the StatefulSet gone, its pods orphaned", timeout=60)
        cluster.json_patches.append({"op": "replace", "path": "/spec/podManagementPolicy",
                                     "value": "OrderedReady"})
        cluster.apply()
        wait_until(lambda: cluster.statefulset().get("status", {}).get("readyReplicas") == 3,
                   what="the new StatefulSet counting the adopted pods", timeout=60)
        assert {o: p["metadata"]["uid"] for o, p in cluster.api_pods().items()} == uids
        cluster.scale(5)  # one pod at a time, each Ready before the next
        # Pod 4 just turned Ready: the view asked may be a poll older than its join.
        wait_until(lambda: len(identities(cluster)) == 5, what="five members",
                   timeout=VIEW_SETTLE_SECONDS)

        # Pod 2 unready (cut off from its peers): scaled to 3, the controller waits.
        cluster.partition(2)
        wait_until(lambda: not cluster.api_ready(cluster.api_pods()[2]),
                   what="pod 2 not Ready", timeout=120)
        cluster.kubectl("scale", f"statefulset/{cluster.name}", "--replicas=3")
        cluster.replicas = 3  # what wait_ready() expects, once the controller may act

        def seen() -> bool:
            sts = cluster.statefulset()
            return bool(sts.get("status", {}).get("observedGeneration", 0)
                        >= sts["metadata"]["generation"])

        wait_until(seen, what="the controller to observe spec.replicas 3", timeout=60)
        window = time.monotonic() + 8
        samples = 0
        while time.monotonic() < window:
            current = cluster.api_pods()
            assert {3, 4} <= set(current), "the controller scaled down with pod 2 unready"
            assert not any(current[o]["metadata"].get("deletionTimestamp") for o in (3, 4))
            samples += 1
            time.sleep(0.5)  # sampling interval of the invariant, not a wait
        assert samples >= 10
        assert removals(cluster) == 0
        cluster.heal()
        cluster.wait_ready(timeout=240)  # pod 2 Ready, then 4 and 3 leave in turn
        wait_until(lambda: names(cluster) == pods(cluster), what="members = pods",
                   timeout=60)
        wait_until(lambda: removals(cluster) == 2, what="two MemberRemoved Events",
                   timeout=30)

        # The StatefulSet deleted (background cascade): its pods go, no member leaves,
        # the claims stay; applied again as shipped, the same members come back with
        # their data. (Not as OrderedReady: pod 0 alone would wait for a quorum that its
        # peers, not created before it is Ready, cannot give; hence Parallel in k8s/.)
        kept = identities(cluster)
        cluster.delete_statefulset(cascade="background")
        wait_until(lambda: cluster.api_pods() == {}, what="every pod gone", timeout=240)
        cluster.json_patches.clear()
        cluster.apply()
        cluster.wait_ready(timeout=240)
        keeps(cluster, kept, "after the StatefulSet came back")
        assert removals(cluster) == 2
    finally:
        writer.stop()
    print(f"FIGURE {cluster.name} ordered/deleted: {samples} samples with pods 3 and 4 kept "
          f"while pod 2 was unready; {len(writer.acknowledged)} writes acknowledged, "
          f"longest wait {writer.longest_gap:.1f} s (the StatefulSet away included)")
    assert writer.acknowledged
    assert writer.lost(leader_url(cluster)) == []

    # The namespace deleted: every pod's leave decides to stay (exit 3 of its preStop),
    # as the kubelet's log says (Events can no longer be posted in the namespace).
    played = list(cluster.pods.values())
    cluster.control_plane.client().delete("v1", "namespaces", cluster.namespace)
    wait_until(lambda: cluster.api_pods() == {}, what="every pod gone", timeout=240)
    for pod in played:
        hooks = cluster.pre_stop_failures(pod.uid, "agent")
        assert len(hooks) == 1 and "exited with 3" in hooks[0], (pod.name, hooks)


def test_claims_deleted_on_scale_down_and_made_anew(tmp_path: Path,
                                                    e2e_control_plane: ControlPlane) -> None:
    """persistentVolumeClaimRetentionPolicy whenScaled: Delete — the controller deletes a
    departing pod's claim, the provisioner its volume; scaled back, the pod gets an empty
    volume and joins as a new member. (The controller's and the provisioner's part is the
    same for every store; etcd plays it.)"""
    with played(ROOT / "k8s" / "etcd", "etcd", tmp_path, e2e_control_plane) as cluster:
        cluster.json_patches.append({"op": "add", "path":
                                     "/spec/persistentVolumeClaimRetentionPolicy",
                                     "value": {"whenScaled": "Delete",
                                               "whenDeleted": "Retain"}})
        cluster.start(3)
        first = identities(cluster)
        writer = writer_for(cluster).start()
        try:
            cluster.scale(1)
            claims = cluster.control_plane.client().list(
                "v1", "persistentvolumeclaims", namespace=cluster.namespace)

            def claims_left() -> list[str]:
                return sorted(c["metadata"]["name"] for c in cluster.control_plane.client()
                              .list("v1", "persistentvolumeclaims",
                                    namespace=cluster.namespace)["items"])

            assert len(claims["items"]) >= 1
            wait_until(lambda: claims_left() == ["data-etcd-0"],
                       what="the claims of pods 1 and 2 deleted", timeout=60)
            cluster.scale(3)
            wait_until(lambda: names(cluster) == pods(cluster), what="members = pods",
                       timeout=60)
        finally:
            writer.stop()
        again = identities(cluster)
        assert again["etcd-0"] == first["etcd-0"]
        assert again["etcd-1"] != first["etcd-1"] and again["etcd-2"] != first["etcd-2"]
        assert writer.lost(leader_url(cluster)) == []
