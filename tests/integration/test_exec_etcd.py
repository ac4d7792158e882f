"""The exec store driving etcd only through etcdctl hooks (and a members hook), on Debian's etcd:
a first start whose readiness is membership, a restart that runs no stop hook, and a
scale-down that removes the member by its stop hook and comes back with the removed
member's data moved aside. One cluster serves the module: each scenario ends with it whole."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from player.agentnamespace import AgentNamespace
from player.pods import InitPods
from player.stores.exec_etcd import HOOKS, ExecEtcdCluster, ExecEtcdHarness
from player.wait import wait_until
from tests.integration.conftest import require_binary, voting_pods
from tests.integration.writes import Writes, restart

pytestmark = pytest.mark.integration

PODS = (0, 1, 2)
# A pod's /status is its agent's last poll (once a second here, exec_pod_env), and its
# membership comes through the leader's agent: with the leader's pod stopped it has none
# until another leads (a 1 s election timeout) and it polls again. A hook's run shows
# once the hook has returned. Each many times over on a loaded host.
VIEW_FOLLOWS_SECONDS = 30.0


# Three pods started through init, their etcd started by the hooks, all Ready.
namespace, pods = voting_pods("exec", ExecEtcdHarness, requires=lambda: (
    require_binary("etcd", "/usr/bin/etcd"), require_binary("etcdctl", "/usr/bin/etcdctl")))


def members(pods: InitPods, ordinal: int) -> list[str]:
    """The member names this pod's agent has from its leader's members hook."""
    return pods.members(ordinal)


def lists_all(pods: InitPods, ordinal: int) -> bool:
    return members(pods, ordinal) == ["exec-0", "exec-1", "exec-2"]


def hook_runs(pods: InitPods, ordinal: int) -> dict[str, Any]:
    runs = pods.harness.sidecars[ordinal].status()["exec_hooks"]
    assert isinstance(runs, dict)
    return runs


def runs_with(pods: InitPods, ordinal: int, hook: str) -> dict[str, Any]:
    """The pod's hook runs once ``hook``'s has been recorded: a run is recorded when the
    hook returns, and start.sh returns up to a 0.2 s status poll after etcd first answers,
    when the agent's own status and members hooks may already have made it ready."""
    def recorded() -> dict[str, Any] | None:
        runs = hook_runs(pods, ordinal)
        return runs if hook in runs else None

    return wait_until(recorded, what=f"exec-{ordinal}'s {hook} hook run recorded",
                      timeout=VIEW_FOLLOWS_SECONDS)


def test_readiness_is_membership_from_the_members_hook(pods: InitPods) -> None:
    """Every pod Ready once its member is in the leader's list and caught up; the list
    comes from etcdctl through the members hook, the leader's through its agent."""
    for ordinal in PODS:
        # A pod Ready before the last one joined sees it at its next poll.
        wait_until(functools.partial(lists_all, pods, ordinal),
                   what=f"exec-{ordinal}'s agent listing all three members", timeout=10)
        assert pods.voters(ordinal) == ["exec-0", "exec-1", "exec-2"]
    runs = runs_with(pods, 1, "primary")
    assert runs["members"]["outcome"] == "ok" and runs["status"]["exit_code"] == 8
    assert runs["primary"]["argv"][0] == str(HOOKS / "start.sh")
    status = pods.harness.sidecars[1].status()
    assert status["view"]["authority_source"] in ("leader", "local")


def test_a_restart_runs_no_stop_hook_and_keeps_the_member(pods: InitPods) -> None:
    """A pod deleted while its StatefulSet keeps it: the agent runs nothing (its etcd is
    stopped with the container, as a restart's), the member stays, and the pod comes back
    from its data by start.sh."""
    writes = Writes(pods, PODS)
    writes.write("before-restart", 10)
    pods.stop(1)
    # exec-0's view comes through the leader's agent: with exec-1 leading, none until
    # another leads and exec-0 polls again.
    wait_until(functools.partial(lists_all, pods, 0),
               what="exec-0's agent listing all three members with exec-1 down",
               timeout=VIEW_FOLLOWS_SECONDS)
    writes.write("while-1-is-down", 10)
    restart(pods, 1)
    assert "stop" not in hook_runs(pods, 1)
    wait_until(lambda: members(pods, 1) == ["exec-0", "exec-1", "exec-2"],
               what="exec-1 back in the member list", timeout=30)
    writes.assert_all_on_every_pod()


def test_scale_down_removes_the_member_by_its_stop_hook_and_it_comes_back(
        pods: InitPods, namespace: AgentNamespace) -> None:
    """Scaled 3 -> 2: exec-2's agent runs stop.sh (member remove through a primary, then
    etcd stops) before the pod goes; two members remain, writes go on. Scaled back to
    3 on the same volume: start.sh finds its member removed, moves the data aside and
    joins afresh (no crash-loop on a removed member's data)."""
    writes = Writes(pods, PODS)
    writes.write("before-scale-down", 10)
    namespace.scale("exec", 2)
    pods.stop(2)
    wait_until(lambda: members(pods, 0) == ["exec-0", "exec-1"],
               what="exec-2 out of the member list", timeout=30)
    writes.ordinals = (0, 1)
    writes.write("at-two", 10)
    writes.assert_all_on_every_pod()
    namespace.scale("exec", 3)
    restart(pods, 2)
    assert isinstance(pods.cluster, ExecEtcdCluster)
    aside = list(pods.cluster.node_dir(2).glob("data.removed-*"))
    assert len(aside) == 1, aside
    wait_until(lambda: members(pods, 2) == ["exec-0", "exec-1", "exec-2"],
               what="exec-2 a member again", timeout=30)
    writes.ordinals = PODS
    writes.assert_all_on_every_pod()
