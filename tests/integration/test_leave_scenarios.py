"""Graceful leave against every real store, with the real Kubernetes API server."""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.registry import raft_stores
from player.agentnamespace import AgentNamespace
from player.controlplane import ControlPlane
from player.stores import harness_class
from player.stores.base import Harness
from player.wait import wait_until
from tests.integration.conftest import harness_for, require_store, split_variant, variants
from tests.integration.kubeproxy import KubeFaultProxy, dump

pytestmark = pytest.mark.integration


@dataclass
class LeaveCluster:
    harness: Harness[Any]
    api: AgentNamespace  # the StatefulSet, its Events, the agent's token
    proxy: KubeFaultProxy  # what the sidecars reach the API through

    @property
    def name(self) -> str:
        return self.harness.store

    def leave_command(self, ordinal: int, **env: str) -> subprocess.CompletedProcess[str]:
        """`sts-agent leave` as the main container's preStop hook runs it."""
        environment = {k: v for k, v in os.environ.items()
                       if not k.startswith(("AGENT_", "POD_"))}
        environment.update({"AGENT_LISTEN": f"{self.harness.ip(ordinal)}:9090",
                            "AGENT_LOG_FORMAT": "json", **env})
        return subprocess.run([sys.executable, "-m", "agent", "leave"], env=environment,
                              capture_output=True, text=True, timeout=60)

    def members(self) -> list[str]:
        """Member names as the cluster's leader reports them, via a sidecar still ready."""
        for sidecar in self.harness.sidecars.values():
            try:
                view = sidecar.status()["view"]["authority"]
            except (httpx.HTTPError, KeyError, TypeError):
                continue
            if view is not None:
                return sorted(m["name"] or m["id"] for m in view["members"])
        raise AssertionError("no sidecar knows the membership")

    def wait_members(self, expected: list[str]) -> None:
        """The sidecars' views follow a change within a poll; wait for it, named."""
        wait_until(lambda: self.members() == expected, what=f"membership {expected}",
                   timeout=30)


@pytest.fixture(params=raft_stores())
def cluster(request: pytest.FixtureRequest, tmp_path: Path, agent_namespace: AgentNamespace,
            kube_proxy: KubeFaultProxy) -> Iterator[LeaveCluster]:
    """Three nodes of a store (or an etcd version: tests parametrize ``cluster`` with
    ``variants``), a sidecar each, the API server through a fault proxy."""
    store, _ = split_variant(request.param)
    agent_namespace.add_statefulset(store, replicas=3)
    harness = harness_for(request.param, tmp_path, election_seconds=1.0, sidecar_env={
        **agent_namespace.env(kube_proxy.url),
        "AGENT_TERMINATION_GRACE_PERIOD_SECONDS": "30"})
    try:
        harness.start(3)
        for sidecar in harness.sidecars.values():
            sidecar.wait_ready(timeout=60)
        yield LeaveCluster(harness, agent_namespace, kube_proxy)
    except BaseException:
        print(harness.logs(), dump(kube_proxy), sep="\n")
        raise
    finally:
        harness.close()


def names(cluster: LeaveCluster, *ordinals: int) -> list[str]:
    return sorted(f"{cluster.name}-{o}" for o in ordinals)


@pytest.mark.parametrize("cluster", variants(raft_stores()), indirect=True)
def test_scale_down_removes_the_departing_pod(cluster: LeaveCluster) -> None:
    cluster.api.scale(cluster.name, 2)
    result = cluster.leave_command(2)
    assert result.returncode == 0, result.stdout + result.stderr
    assert '"result": "removed"' in result.stdout
    for ordinal in (0, 1):
        cluster.harness.sidecars[ordinal].wait_ready(timeout=30)
    cluster.wait_members(names(cluster, 0, 1))
    wait_until(lambda: cluster.api.event_reasons() == ["MemberRemoved"],
               what="the MemberRemoved event", timeout=10)
    assert "leaving the cluster" in cluster.harness.sidecars[2].reasons()
    # A second preStop (or SIGTERM after it) is a no-op that reports the same outcome.
    again = httpx.post(cluster.harness.sidecars[2].url + "/leave", timeout=30)
    assert again.status_code == 200 and again.json()["result"] == "removed"
    assert cluster.api.event_reasons() == ["MemberRemoved"]


def test_the_store_hook_alone_removes_a_departing_pod(cluster: LeaveCluster) -> None:
    """Classic layout, the agent's own preStop too slow to begin (a process start under
    its CPU limit) or lost: the store container's preStop, GET /leave/wait, starts the
    leave itself after its window and holds until the member is out, so the store's
    SIGTERM that follows never cuts the removal. (Before, it waited 3 s, answered
    ``{"leave": null}`` and let the store stop with the member still configured.)"""
    cluster.api.scale(cluster.name, 2)
    answer = httpx.get(cluster.harness.sidecars[2].url + "/leave/wait", timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.json()["leave"]["result"] == "removed", answer.text
    cluster.wait_members(names(cluster, 0, 1))
    wait_until(lambda: cluster.api.event_reasons() == ["MemberRemoved"],
               what="the MemberRemoved event", timeout=10)


@pytest.mark.parametrize("cluster", variants(raft_stores()), indirect=True)
def test_rolling_restart_removes_nothing(cluster: LeaveCluster) -> None:
    before = cluster.members()
    result = cluster.leave_command(1)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "not a scale-down: ordinal 1 is kept" in result.stdout
    # If only the main container restarts (liveness), the sidecar must not stay unready.
    cluster.harness.sidecars[1].wait_ready(timeout=30)
    # The pod restarts: store and sidecar stop and come back with the same data.
    cluster.harness.sidecars[1].stop()
    cluster.harness.stop_store(1)
    cluster.harness.restart_store(1)
    cluster.harness.start_sidecar(1)
    for sidecar in cluster.harness.sidecars.values():
        sidecar.wait_ready(timeout=60)
    assert cluster.members() == before
    assert [r for r in cluster.proxy.requests if r[0] == "POST"] == []


def test_departing_leader_hands_off_and_is_removed(cluster: LeaveCluster) -> None:
    leader = cluster.harness.leader()
    # Policy "always" makes the leader's pod the departing one, whatever its ordinal.
    cluster.harness.sidecars[leader].stop()
    sidecar = cluster.harness.start_sidecar(leader, env={"AGENT_LEAVE_POLICY": "always"})
    sidecar.wait_ready(timeout=30)
    response = httpx.post(sidecar.url + "/leave", timeout=60)
    assert response.status_code == 200, response.text
    assert response.json()["result"] == "removed", response.text
    survivors = [o for o in range(3) if o != leader]

    def new_leader() -> int | None:
        current = cluster.harness.leader()
        return current if current != leader else None

    assert wait_until(new_leader, what="a new leader", timeout=30) in survivors
    cluster.wait_members(names(cluster, *survivors))
    if cluster.harness.store == "etcd":
        assert "leadership_handed_off" in sidecar.proc.log_path.read_text()


def test_kube_api_unreachable_means_stay(cluster: LeaveCluster) -> None:
    cluster.api.scale(cluster.name, 2)
    cluster.proxy.available = False
    result = cluster.leave_command(2)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "cannot read StatefulSet" in result.stdout
    assert cluster.members() == names(cluster, 0, 1, 2)
    assert "leave_decision" in cluster.harness.sidecars[2].proc.log_path.read_text()


@pytest.mark.parametrize("cluster", ["etcd"], indirect=True)  # the decision is the agent's
def test_statefulset_deleted_means_stay_without_a_warning(cluster: LeaveCluster) -> None:
    """`helm uninstall` or `kubectl delete statefulset`: the API answers 404. Before, the
    agent posted a Warning that it could not read the StatefulSet."""
    cluster.api.delete_statefulset(cluster.name)
    result = cluster.leave_command(2)
    assert result.returncode == 3, result.stdout + result.stderr
    assert f"StatefulSet {cluster.name} is gone" in result.stdout
    assert cluster.members() == names(cluster, 0, 1, 2)
    # Events go out in the background: a sidecar that stops has posted all of its own.
    assert cluster.harness.sidecars[2].stop() == 0
    assert "event_recorded" not in cluster.harness.sidecars[2].proc.log_path.read_text()
    assert cluster.api.events() == []


def test_quorum_lost_gives_up_within_the_deadline(cluster: LeaveCluster) -> None:
    cluster.api.scale(cluster.name, 2)
    for ordinal in (0, 1):
        cluster.harness.stop_store(ordinal)
    started = time.monotonic()
    result = cluster.leave_command(2)
    took = time.monotonic() - started
    assert result.returncode == 1, result.stdout + result.stderr
    assert "deadline" in result.stdout
    assert took < 30, "the command ends within the grace period"
    wait_until(lambda: "MemberRemoveFailed" in cluster.api.event_reasons(),
               what="the MemberRemoveFailed event", timeout=10)
    for ordinal in (0, 1):
        cluster.harness.restart_store(ordinal)
    for ordinal in (0, 1):
        cluster.harness.sidecars[ordinal].wait_ready(timeout=60)
    assert cluster.members() == names(cluster, 0, 1, 2), "nothing was removed"


def test_sigterm_to_a_classic_sidecar_leaves_on_scale_down(cluster: LeaveCluster) -> None:
    cluster.api.scale(cluster.name, 2)
    assert cluster.harness.sidecars[2].proc.stop(timeout=40) == 0
    log = cluster.harness.sidecars[2].proc.log_path.read_text()
    assert '"event": "leave_on_sigterm"' in log and '"result": "removed"' in log
    cluster.wait_members(names(cluster, 0, 1))


class Writer(threading.Thread):
    """Writes w/000000, w/000001, ... as fast as the cluster acknowledges them."""

    def __init__(self, harness: Harness[Any]) -> None:
        super().__init__(daemon=True, name="writer")
        self.harness = harness
        self.acknowledged: dict[str, str] = {}
        self.failed = 0
        self.halt = threading.Event()

    def run(self) -> None:
        number = 0
        while not self.halt.is_set():
            key, value = f"w/{number:06d}", str(number)
            if self.harness.put(key, value):
                self.acknowledged[key] = value
            else:
                self.failed += 1
            number += 1

    def stop(self) -> None:
        self.halt.set()
        self.join(30)


def terminate_pod(cluster: LeaveCluster, ordinal: int) -> None:
    """After preStop: the pod's containers get SIGTERM (the store may have exited already)."""
    sidecar = cluster.harness.sidecars.pop(ordinal)
    sidecar.stop()
    cluster.harness.stop_store(ordinal)


@contextlib.contextmanager
def cluster_with_writer(store: str, tmp_path: Path, control_plane: ControlPlane,
                        replicas: int) -> Iterator[tuple[LeaveCluster, Writer]]:
    """``replicas`` ready pods, the API server (through a fault proxy), and a writer
    running throughout."""
    require_store(store)
    api = AgentNamespace(control_plane, tmp_path / "kube")
    api.add_statefulset(store, replicas=replicas)
    proxy = KubeFaultProxy(control_plane).start()
    harness = harness_class(store)(tmp_path, sidecar_env={
        **api.env(proxy.url), "AGENT_TERMINATION_GRACE_PERIOD_SECONDS": "60"})
    writer = Writer(harness)
    try:
        harness.start(replicas)
        for sidecar in harness.sidecars.values():
            sidecar.wait_ready(timeout=60)
        writer.start()
        yield LeaveCluster(harness, api, proxy), writer
    except BaseException:
        print(harness.logs(), dump(proxy), sep="\n")
        raise
    finally:
        writer.stop()
        harness.close()
        proxy.stop()
        api.delete()


def assert_no_write_lost(cluster: LeaveCluster, writer: Writer) -> None:
    """The cluster, once the scenario is over, takes writes again (20 more acknowledged:
    how many came during the scenario depends on how long its steps took), and holds
    every write it acknowledged."""
    before = len(writer.acknowledged)
    wait_until(lambda: len(writer.acknowledged) >= before + 20,
               what=f"20 more writes acknowledged after the scenario ({before} so far, "
                    f"{writer.failed} refused)", timeout=60)
    writer.stop()
    stored = cluster.harness.read_all()
    lost = [k for k, v in writer.acknowledged.items() if stored.get(k) != v]
    assert lost == [], f"{len(lost)} acknowledged writes lost"


@pytest.mark.parametrize("store", raft_stores())
def test_scale_five_to_one_with_a_writer(store: str, tmp_path: Path,
        control_plane: ControlPlane) -> None:
    with cluster_with_writer(store, tmp_path, control_plane, 5) as (cluster, writer):
        for ordinal in (4, 3, 2, 1):
            cluster.api.scale(store, ordinal)
            result = cluster.leave_command(ordinal)
            assert result.returncode == 0, result.stdout + result.stderr
            terminate_pod(cluster, ordinal)

            def remaining_leads(remaining: int = ordinal) -> bool:
                return cluster.harness.cluster.leader() in range(remaining)

            wait_until(remaining_leads, timeout=30,
                       what=f"a leader among the remaining pods after removing {ordinal}")
            cluster.wait_members(names(cluster, *range(ordinal)))
        assert_no_write_lost(cluster, writer)
        assert cluster.members() == names(cluster, 0)
        cluster.harness.sidecars[0].wait_ready(timeout=30)


@pytest.mark.parametrize("store", raft_stores())
def test_parallel_scale_down_three_to_one(store: str, tmp_path: Path,
        control_plane: ControlPlane) -> None:
    """podManagementPolicy: Parallel: both departing pods leave at once."""
    with cluster_with_writer(store, tmp_path, control_plane, 3) as (cluster, writer):
        cluster.api.scale(store, 1)
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            results = list(pool.map(cluster.leave_command, (2, 1)))
        for result in results:
            assert result.returncode == 0, result.stdout + result.stderr
        for ordinal in (2, 1):
            terminate_pod(cluster, ordinal)
        wait_until(lambda: cluster.harness.cluster.leader() == 0,
                   what="the remaining pod to lead", timeout=30)
        assert_no_write_lost(cluster, writer)
        cluster.wait_members(names(cluster, 0))


@pytest.mark.parametrize("store", raft_stores())
def test_leader_killed_while_another_pod_leaves(store: str, tmp_path: Path,
        control_plane: ControlPlane) -> None:
    """5 pods, scale to 4: the leader is SIGKILLed once pod 4's leave is under way. The
    removal goes through the new leader; the 3 live of the 4 remaining keep quorum."""
    with cluster_with_writer(store, tmp_path, control_plane, 5) as (cluster, writer):
        if cluster.harness.leader() == 4:
            # Another pod's removal is the scenario: pod 4 hands off as a restarting
            # leader does (spec.replicas is still 5, so it stays).
            response = httpx.post(cluster.harness.sidecars[4].url + "/leave", timeout=30)
            assert response.json()["result"] == "stayed", response.text
            if store == "rqlite":  # no transfer API: a restart of its store moves it
                cluster.harness.stop_store(4)
                cluster.harness.restart_store(4)
                cluster.harness.sidecars[4].wait_ready(timeout=60)
            else:
                assert "leadership handed to" in response.json()["reason"], response.text

        def other_leader() -> tuple[int] | None:
            current = cluster.harness.leader()
            return None if current == 4 else (current,)

        (leader,) = wait_until(other_leader, what="a leader other than pod 4", timeout=30)
        cluster.api.scale(store, 4)
        # The API answers 503 (retried) until the leader is dead: the leave has begun
        # (readiness 503, decision pending) and goes on without the leader.
        cluster.proxy.available = False
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            leaving = pool.submit(cluster.leave_command, 4)
            wait_until(lambda: any("statefulsets" in path for _, path, _ in
                                   cluster.proxy.requests),
                       what="pod 4's leave to ask for the StatefulSet", timeout=30)
            killed_at = time.monotonic()
            cluster.harness.kill_store(leader)
            cluster.proxy.available = True
            result = leaving.result(timeout=90)
        assert result.returncode == 0, result.stdout + result.stderr
        assert '"result": "removed"' in result.stdout
        terminate_pod(cluster, 4)
        survivors = [o for o in range(4) if o != leader]

        def survivor_leads() -> bool:
            return cluster.harness.cluster.leader() in survivors

        wait_until(survivor_leads, what="a leader among the live remaining pods",
                   timeout=30)
        leaderless = time.monotonic() - killed_at
        cluster.wait_members(names(cluster, 0, 1, 2, 3))
        cluster.harness.restart_store(leader)
        for ordinal in range(4):
            cluster.harness.sidecars[ordinal].wait_ready(timeout=90)
        assert_no_write_lost(cluster, writer)
        print(f"{store}: leave took {result.stdout.strip()[-120:]}; "
              f"a leader again within {leaderless:.1f}s of the kill; "
              f"{len(writer.acknowledged)} writes acknowledged, 0 lost")
