"""Membership repair against every real store, with the real Kubernetes API server: a
member whose pod went away without leaving is removed by the leader's sidecar, a kept
one never is, and no acknowledged write is lost."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.registry import raft_stores
from player.agentnamespace import AgentNamespace
from player.stores.base import Harness
from player.wait import wait_until
from tests.integration.conftest import harness_for, ready_cluster, split_variant
from tests.integration.kubeproxy import KubeFaultProxy, dump

pytestmark = pytest.mark.integration

AFTER_SECONDS = 4.0  # AGENT_REPAIR_AFTER_SECONDS for these tests


@dataclass
class RepairCluster:
    harness: Harness[Any]
    api: AgentNamespace
    proxy: KubeFaultProxy

    @property
    def name(self) -> str:
        return self.harness.store

    def statuses(self) -> Iterator[dict[str, Any]]:
        """/status of each running sidecar that answers."""
        for sidecar in self.harness.sidecars.values():
            if not sidecar.proc.running:
                continue
            try:
                yield dict(sidecar.status())
            except (httpx.HTTPError, ValueError):
                continue

    def members(self) -> list[str]:
        """Member names in the leader's own view, read through a ready sidecar."""
        for status in self.statuses():
            authority = status["view"]["authority"]
            if authority is not None:
                return sorted(m["name"] or m["address"] for m in authority["members"])
        raise AssertionError("no sidecar knows the membership")

    def leader_repair(self) -> dict[str, Any] | None:
        """The repair's state on the sidecar whose node leads."""
        for status in self.statuses():
            repair = status["repair"]
            if repair is not None and repair["leads"]:
                return dict(repair)
        return None

    def die(self, ordinal: int) -> None:
        """The pod's processes end at once, no hook, no SIGTERM: a force-delete, a lost
        node, an OOM kill of both containers."""
        self.harness.sidecars[ordinal].proc.kill()
        self.harness.kill_store(ordinal)


@pytest.fixture(params=raft_stores())
def cluster(request: pytest.FixtureRequest, tmp_path: Path, agent_namespace: AgentNamespace,
            kube_proxy: KubeFaultProxy) -> Iterator[RepairCluster]:
    """Three nodes, a sidecar each repairing after ``AFTER_SECONDS``; no pod objects
    exist in this API server, so every member's pod reads as gone."""
    store, _ = split_variant(request.param)
    agent_namespace.add_statefulset(store, replicas=3)
    harness = harness_for(request.param, tmp_path, election_seconds=1.0, sidecar_env={
        **agent_namespace.env(kube_proxy.url),
        "AGENT_REPAIR_AFTER_SECONDS": str(AFTER_SECONDS),
        "AGENT_REPAIR_INTERVAL_SECONDS": "0.5"})
    with ready_cluster(harness):
        try:
            yield RepairCluster(harness, agent_namespace, kube_proxy)
        except BaseException:
            print(dump(kube_proxy))
            raise


def written(cluster: RepairCluster, start: int, count: int) -> list[str]:
    """``count`` writes ``w/<n>``, each sent until acknowledged (an election after a
    death refuses some for a moment); their keys."""
    keys = []
    for index in range(start, start + count):
        key = f"w/{index:04d}"
        wait_until(lambda: cluster.harness.put(key, str(index)),  # noqa: B023
                   what=f"write {key} acknowledged", timeout=30)
        keys.append(key)
    return keys


def test_a_pod_gone_without_leaving_is_removed_by_the_leader(cluster: RepairCluster) -> None:
    """Scale-down with the condemned pod force-deleted (or on a lost node): no preStop,
    no SIGTERM. The leader's sidecar removes its member once it has been silent for the
    repair's wait, and says so in an Event."""
    keys = written(cluster, 0, 20)
    cluster.api.scale(cluster.name, 2)
    cluster.die(2)  # the leader's, at times: an election first
    died = time.monotonic()
    keys += written(cluster, 100, 20)
    expected = [f"{cluster.name}-0", f"{cluster.name}-1"]
    wait_until(lambda: cluster.members() == expected, what=f"membership {expected}",
               timeout=AFTER_SECONDS + 30)
    took = time.monotonic() - died
    print(f"repair: {cluster.name}-2 removed {took:.1f} s after its pod died "
          f"(wait {AFTER_SECONDS:g} s)")
    wait_until(lambda: "StaleMemberRemoved" in cluster.api.event_reasons(),
               what="the StaleMemberRemoved event", timeout=10)
    event = next(e for e in cluster.api.events() if e["reason"] == "StaleMemberRemoved")
    assert "ordinal 2 is outside the kept ordinals 0..1, its pod does not exist" in (
        event["message"])
    keys += written(cluster, 200, 20)
    assert sorted(cluster.harness.read_all()) == sorted(keys)
    repair = cluster.leader_repair()
    assert repair is not None and repair["removed"] == [f"{cluster.name}-2"]


def test_a_kept_pod_that_dies_is_never_removed(cluster: RepairCluster) -> None:
    """A pod of a kept ordinal dies the same way: it will come back, so the repair
    leaves its member alone however long it is silent."""
    cluster.die(2)
    first = wait_until(cluster.leader_repair, what="a leader's repair", timeout=30)
    # Enough passes for three times the repair's wait to have gone by.
    passes = first["passes"] + int(3 * AFTER_SECONDS / 0.5)
    wait_until(lambda: (cluster.leader_repair() or {}).get("passes", 0) >= passes,
               what=f"{passes} repair passes", timeout=3 * AFTER_SECONDS + 30)
    repair = cluster.leader_repair()
    assert repair is not None
    assert repair["removed"] == [] and repair["waiting"] == {}
    assert cluster.members() == [f"{cluster.name}-{o}" for o in range(3)]
    assert "StaleMemberRemoved" not in cluster.api.event_reasons()


def test_an_unreadable_api_removes_nothing(cluster: RepairCluster) -> None:
    """The API server cannot be reached: the repair cannot tell a dropped ordinal from a
    kept one, so it removes nothing and says why; once the API is back it repairs."""
    cluster.api.scale(cluster.name, 2)
    cluster.proxy.available = False
    cluster.die(2)

    def blocked() -> str | None:
        repair = cluster.leader_repair()
        return (repair or {}).get("blocked")

    reason = wait_until(blocked, what="the repair saying why it waits", timeout=30)
    assert "cannot read StatefulSet" in reason and "removing nothing" in reason
    assert len(cluster.members()) == 3
    cluster.proxy.available = True
    expected = [f"{cluster.name}-0", f"{cluster.name}-1"]
    wait_until(lambda: cluster.members() == expected, what=f"membership {expected}",
               timeout=AFTER_SECONDS + 30)


def test_an_agent_killed_mid_leave_is_repaired(cluster: RepairCluster) -> None:
    """Pod 2's leave is under way but held back (node 1 is down: removing 2 would leave 1
    of 2 voters answering, or there is no leader while node 1 was it) when the pod's
    processes are killed. Once node 1 is back, the leader's sidecar removes the member
    the leave never did."""
    keys = written(cluster, 0, 10)
    cluster.api.scale(cluster.name, 2)
    cluster.harness.stop_store(1)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENT_", "POD_"))}
    env.update({"AGENT_LISTEN": f"{cluster.harness.ip(2)}:9090", "AGENT_LOG_FORMAT": "json"})
    leave = subprocess.Popen([sys.executable, "-m", "agent", "leave"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        log = cluster.harness.sidecars[2].proc.log_path
        wait_until(lambda: "leave_waiting" in log.read_text(),
                   what="pod 2's leave held back", timeout=30)
        cluster.die(2)
        leave.wait(timeout=30)
    finally:
        if leave.poll() is None:
            leave.kill()
            leave.wait()
    assert "leave_outcome" not in log.read_text()  # killed before it ended
    cluster.harness.restart_store(1)
    expected = [f"{cluster.name}-0", f"{cluster.name}-1"]
    wait_until(lambda: cluster.members() == expected, what=f"membership {expected}",
               timeout=AFTER_SECONDS + 60)
    wait_until(lambda: "StaleMemberRemoved" in cluster.api.event_reasons(),
               what="the StaleMemberRemoved event", timeout=10)
    assert "MemberRemoved" not in cluster.api.event_reasons()  # not the leave's doing
    keys += written(cluster, 100, 10)
    assert sorted(cluster.harness.read_all()) == sorted(keys)


@pytest.mark.parametrize("cluster", ["etcd"], indirect=True)
def test_an_orphan_etcd_learner_of_a_dropped_ordinal_is_removed(
        cluster: RepairCluster) -> None:
    """An init added etcd-3 as a learner, then its pod was scaled away before etcd ever
    started: etcd allows one learner at a time, so it would block every later scale-up.
    The repair removes it (it has no name yet: its ordinal comes from its peer URL)."""
    leader = cluster.harness.store_url(cluster.harness.leader())
    peer = f"http://{cluster.name}-3.{cluster.name}.{cluster.api.name}.svc.cluster.local:2380"

    def add() -> bool:
        # etcd refuses changes ("unhealthy cluster") until every member has been
        # connected for a few seconds after its start.
        answer = httpx.post(f"{leader}/v3/cluster/member/add",
                            json={"peerURLs": [peer], "isLearner": True}, timeout=10)
        assert answer.status_code in (200, 503), answer.text
        return answer.status_code == 200

    wait_until(add, what="etcd accepting the learner", timeout=30)
    wait_until(lambda: peer in cluster.members(), what="the learner in the leader's view",
               timeout=10)
    expected = [f"{cluster.name}-{o}" for o in range(3)]
    wait_until(lambda: cluster.members() == expected, what=f"membership {expected}",
               timeout=AFTER_SECONDS + 30)
    wait_until(lambda: "StaleMemberRemoved" in cluster.api.event_reasons(),
               what="the StaleMemberRemoved event", timeout=10)
    event = next(e for e in cluster.api.events() if e["reason"] == "StaleMemberRemoved")
    assert "ordinal 3 is outside the kept ordinals 0..2" in event["message"]


@pytest.mark.parametrize("cluster", ["rqlite"], indirect=True)  # the pod rule is the agent's
def test_a_pending_pod_of_a_dropped_ordinal_is_removed_and_a_running_one_is_not(
        cluster: RepairCluster) -> None:
    """The pod object of the silent member still exists. Running (not yet deleted by the
    StatefulSet controller): its own preStop will remove it, so the repair waits. Once
    it is Pending (recreated, never scheduled): it cannot run the member, so the repair
    removes it."""
    pod = f"{cluster.name}-2"
    ns = cluster.api.name
    admin = cluster.api.admin
    admin.create("v1", "pods", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod, "namespace": ns},
        "spec": {"serviceAccountName": "sts-agent",
                 "containers": [{"name": "store", "image": "store"}]}}, namespace=ns)
    admin.patch("v1", "pods", pod, {"status": {"phase": "Running"}}, namespace=ns,
                subresource="status")
    cluster.api.scale(cluster.name, 2)
    cluster.die(2)

    def waiting() -> str | None:
        return ((cluster.leader_repair() or {}).get("waiting") or {}).get(pod)

    reason = wait_until(lambda: (w := waiting()) is not None and "may still run" in w and w,
                        what=f"the repair waiting on {pod}'s running pod",
                        timeout=AFTER_SECONDS + 30)
    assert reason == f"pod {pod} may still run it: its own leave removes it"
    assert len(cluster.members()) == 3
    admin.patch("v1", "pods", pod, {"status": {"phase": "Pending"}}, namespace=ns,
                subresource="status")
    expected = [f"{cluster.name}-0", f"{cluster.name}-1"]
    wait_until(lambda: cluster.members() == expected, what=f"membership {expected}",
               timeout=30)
    wait_until(lambda: "StaleMemberRemoved" in cluster.api.event_reasons(),
               what="the StaleMemberRemoved event", timeout=10)
    event = next(e for e in cluster.api.events() if e["reason"] == "StaleMemberRemoved")
    assert "its pod is Pending" in event["message"]
