"""Faults played on the k8s/ examples: the DNS server gone while pods run, and one pod cut
off from the others by a network partition; a client writes throughout."""

from __future__ import annotations

import time

import pytest

from player.statefulset import StatefulSetPlayer
from player.wait import wait_until
from player.writer import writer_for
from tests.e2e.conftest import VIEW_SETTLE_SECONDS, more_writes
from tests.e2e.test_statefulset import assert_linearizable, leader_url

pytestmark = pytest.mark.e2e


def readyz(cluster: StatefulSetPlayer, ordinal: int) -> tuple[int, str]:
    answer = cluster._http.get(f"http://{cluster.pods[ordinal].ip}:9090/readyz")
    return answer.status_code, answer.text


def polls(cluster: StatefulSetPlayer, ordinal: int) -> int:
    return int(cluster.status(ordinal)["polls"])


def leader_ordinal(cluster: StatefulSetPlayer) -> int:
    view = cluster.status(0)["view"]["authority"]
    leader = next(m for m in view["members"] if m["id"] == view["leader_id"])
    return int(str(leader["name"]).split(".")[0].rsplit("-", 1)[1])


def test_dns_outage_while_running_keeps_every_pod_ready(cluster: StatefulSetPlayer) -> None:
    """The sidecar reads its own store on localhost and keeps its connection to the
    leader open, so a cluster that does not change needs no new lookup. (When one is
    needed and fails, the reason says DNS: tests/unit/test_backend_etcd.py.)"""
    cluster.start(3)
    writer = writer_for(cluster).start()
    try:
        cluster.stop_dns()
        target = {o: polls(cluster, o) + 10 for o in range(3)}
        samples = 0
        deadline = time.monotonic() + 60
        while any(polls(cluster, o) < target[o] for o in range(3)):
            assert time.monotonic() < deadline, "10 polls per pod with DNS down"
            for ordinal in range(3):
                status, body = readyz(cluster, ordinal)
                assert status == 200, (ordinal, body)
            samples += 1
            time.sleep(0.2)  # sampling interval of the readiness check, not a wait
        acknowledged_during_outage = len(writer.acknowledged)
        cluster.start_dns()
        wait_until(lambda: len(writer.acknowledged) > acknowledged_during_outage + 5,
                   what="writes acknowledged after DNS is back", timeout=30)
    finally:
        writer.stop()
    print(f"DNS down: {samples} readiness samples x 3 pods, all 200; "
          f"{acknowledged_during_outage} writes acknowledged")
    assert samples >= 10
    assert writer.lost(leader_url(cluster)) == []
    assert_linearizable(writer)


def test_partitioned_follower_goes_unready_and_comes_back(cluster: StatefulSetPlayer) -> None:
    cluster.start(3)
    before = {m["name"]: m["id"] for m in cluster.members()}
    leader = leader_ordinal(cluster)
    cut = max(o for o in range(3) if o != leader)
    majority = [o for o in range(3) if o != cut]
    writer = writer_for(cluster).start()
    try:
        cluster.partition(cut)
        started = time.monotonic()
        samples = 0
        while readyz(cluster, cut)[0] == 200:
            assert time.monotonic() - started < 60, f"pod {cut} still ready, partitioned"
            for ordinal in majority:
                status, body = readyz(cluster, ordinal)
                assert status == 200, (ordinal, body)
            samples += 1
            time.sleep(0.2)  # sampling interval of the readiness checks
        unready_after = time.monotonic() - started
        reason = readyz(cluster, cut)[1]
        # The majority keeps a leader and keeps taking writes while the partition lasts.
        acknowledged = len(writer.acknowledged)
        target = {o: polls(cluster, o) + 6 for o in majority}
        while any(polls(cluster, o) < target[o] for o in majority):
            for ordinal in majority:
                status, body = readyz(cluster, ordinal)
                assert status == 200, (ordinal, body)
            assert time.monotonic() - started < 120, "6 polls on the majority side"
            time.sleep(0.2)  # sampling interval of the readiness checks
        wait_until(lambda: len(writer.acknowledged) > acknowledged + 5,
                   what="writes acknowledged by the majority side", timeout=30)
        cluster.heal()
        healed = time.monotonic()
        cluster.wait_ready(timeout=120)
        ready_after_heal = time.monotonic() - healed
    finally:
        cluster.heal()
        writer.stop()
    print(f"partitioned pod {cut}: 503 after {unready_after:.1f}s ({reason}); "
          f"all ready {ready_after_heal:.1f}s after healing; "
          f"{len(writer.acknowledged)} writes acknowledged")
    assert {m["name"]: m["id"] for m in cluster.members()} == before
    assert writer.lost(leader_url(cluster)) == []
    assert_linearizable(writer)
    assert "MemberRemoved" not in cluster.event_reasons()


def test_a_store_container_killed_restarts_in_place(cluster: StatefulSetPlayer) -> None:
    """The leader's store container dies (SIGKILL of its processes: an OOM kill): the
    kubelet restarts it in the same pod, on the same volume; the member stays, the pod is
    Ready again, and no acknowledged write is lost."""
    cluster.start(3)
    before = {m["name"]: m["id"] for m in cluster.members()}
    leader = leader_ordinal(cluster)
    store = next(c["name"] for c in cluster.example.pod_spec["containers"]
                 if c["name"] != "agent")
    uid = cluster.pods[leader].uid
    writer = writer_for(cluster).start()
    try:
        more_writes(writer, 10, "before the crash")
        cluster.crash_container(leader, store)
        cluster.wait_ready(timeout=120)
        more_writes(writer, 10, "after the restart")
    finally:
        writer.stop()
    print(f"pod {leader}'s {store} (the leader) killed and restarted in place; "
          f"{len(writer.acknowledged)} writes acknowledged")
    assert cluster.pods[leader].uid == uid
    wait_until(lambda: {m["name"]: m["id"] for m in cluster.members()} == before,
               what="the same members under the same ids", timeout=VIEW_SETTLE_SECONDS)
    assert writer.lost(leader_url(cluster)) == []
    assert_linearizable(writer)
    assert "MemberRemoved" not in cluster.event_reasons()
