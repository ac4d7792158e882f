"""The exec store on real MariaDB + galera-4, driven only by k8s/exec-galera's RSS-style hooks:
the first start, a full outage recovered by the sequence vote with nothing lost, a failed
sequence that blocks the seed until the override, a status hook that hangs (a reason
in /readyz; nothing stopped), and a stuck node restarted to join again. One cluster
serves the module: each scenario ends with it whole."""

from __future__ import annotations

import concurrent.futures
import json
from typing import Any

import pytest

from player.agentnamespace import AgentNamespace
from player.pods import InitPods
from player.stores.base import last_event
from player.stores.exec import HOOKS, ExecGaleraCluster, ExecHarness, hooks_json
from player.stores.galera import root_sql
from player.wait import wait_until
from tests.integration.conftest import require_store, voting_pods
from tests.integration.writes import Writes, kill, restart

pytestmark = pytest.mark.integration

PODS = (0, 1, 2)
# A hook's run shows in /status once the hook has returned. start.sh returns at its next
# 0.2 s ping after mariadbd first answers, and readiness does not wait for it: the status
# hook, run once a second beside it, can find the node Synced first. A ping's lag, many
# times over on a loaded host.
HOOK_RECORDED_SECONDS = 30.0


# Three pods started through init, their mariadbd started by the hooks, all Ready.
namespace, pods = voting_pods("exec", ExecHarness, requires=lambda: require_store("galera"))


def store_pid(pods: InitPods, ordinal: int) -> int | None:
    """The pid of the pod's mariadbd, while it lives."""
    assert isinstance(pods.cluster, ExecGaleraCluster)
    return pods.cluster.pid(ordinal)


def plan(pods: InitPods, ordinal: int) -> dict[str, Any]:
    """What the pod's last init decided (its exec_plan log line)."""
    found = last_event(pods.init_results[ordinal].stderr, "exec_plan")
    assert found is not None, f"exec-{ordinal}'s init logged no plan"
    return found


def status_with(pods: InitPods, ordinal: int, hook: str) -> dict[str, Any]:
    """The pod's /status once ``hook``'s last run is in it (see HOOK_RECORDED_SECONDS)."""
    def recorded() -> dict[str, Any] | None:
        status: dict[str, Any] = pods.harness.sidecars[ordinal].status()
        return status if hook in status["exec_hooks"] else None

    return wait_until(recorded, what=f"exec-{ordinal}'s {hook} hook run recorded",
                      timeout=HOOK_RECORDED_SECONDS)


def test_the_first_start_seeds_the_lowest_ordinal_and_reports_its_hooks(pods: InitPods) -> None:
    """New volumes all say sequence 0: a tie, so ordinal 0 seeds and the others join it
    (its address appended to start.sh, as RSS does); /status shows every hook's last
    run, /metrics their durations."""
    assert plan(pods, 0)["role"] == "seed" and "tied with 1, 2" in plan(pods, 0)["reason"]
    for ordinal in (1, 2):
        assert plan(pods, ordinal)["role"] == "primary", plan(pods, ordinal)
        assert plan(pods, ordinal)["primaries"] == [pods.cluster.ip(0)]
    status = status_with(pods, 1, "primary")
    assert status["exec_start"]["state"] == "running", status["exec_start"]
    hooks = status["exec_hooks"]
    assert hooks["primary"]["argv"] == [str(HOOKS / "start.sh"), pods.cluster.ip(0)]
    assert hooks["status"]["exit_code"] == 8 and hooks["status"]["outcome"] == "ok"
    assert status["view"]["local"]["details"]["role"] == "primary"
    metrics = pods.harness.sidecars[1].metrics()
    assert 'sts_agent_hook_seconds_count{hook="status",outcome="ok"}' in metrics
    assert 'sts_agent_hook_seconds_count{hook="primary",outcome="ok"} 1.0' in metrics


def test_full_outage_seeds_the_highest_sequence_and_loses_nothing(pods: InitPods) -> None:
    """Writes; one pod stopped cleanly (its sidecar stops mariadbd: its sequence is where
    it stopped); more writes; the other two killed (sequence.sh recovers theirs from
    InnoDB). Every pod started at once: the vote seeds one of the killed two, the lower
    ordinal on a tie, and every acknowledged write is on every pod."""
    writes = Writes(pods, PODS)
    writes.write("before", 20)
    pods.stop(2)
    writes.write("after-stop", 20)
    kill(pods, 0)
    kill(pods, 1)
    restart(pods, *PODS)
    assert plan(pods, 0)["role"] == "seed", plan(pods, 0)
    assert "tied with 1" in plan(pods, 0)["reason"]
    assert plan(pods, 0)["sequence"] > plan(pods, 2)["sequence"]
    assert plan(pods, 1)["role"] == plan(pods, 2)["role"] == "primary"
    writes.assert_all_on_every_pod()
    writes.write("recovered", 5)
    writes.assert_all_on_every_pod()


def test_a_failed_sequence_blocks_the_seed_until_the_override(
        pods: InitPods, namespace: AgentNamespace) -> None:
    """A full outage after which exec-2's sequence hook fails: no init seeds (that pod
    may hold the latest writes, which RSS would pass over); each exits naming it, with a
    Warning Event, and nothing starts. With AGENT_EXEC_FORCE_SEED_ORDINAL=0 on the other
    two, exec-0 seeds loudly and exec-1 joins; exec-2, its hook mended, joins too."""
    writes = Writes(pods, PODS)
    writes.write("before-block", 10)
    for ordinal in PODS:
        kill(pods, ordinal)
    broken = json.loads(hooks_json())
    broken["sequence"] = {"command": ["sh", "-c", "echo 'disk unreadable' >&2; exit 3"]}
    envs = {0: {}, 1: {}, 2: {"AGENT_EXEC_HOOKS": json.dumps(broken)}}
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda o: pods.init(
            o, check=False, env={"AGENT_DNS_WAIT_TIMEOUT_SECONDS": "12", **envs[o]}), PODS))
    for ordinal, result in zip(PODS, results, strict=True):
        assert result.returncode != 0, f"exec-{ordinal} started without exec-2's sequence"
        assert "ordinal 2: sequence hook" in result.stderr and "disk unreadable" in \
            result.stderr, result.stderr[-2000:]
    assert pods.harness.running() == []
    blocked = {e["involvedObject"]["name"] for e in namespace.events()
               if e["reason"] == "ExecStartBlocked"}
    assert blocked == {f"exec-{o}" for o in PODS}
    pods.start(0, 1, env={"AGENT_EXEC_FORCE_SEED_ORDINAL": "0"})
    pods.wait_ready(0, 1)
    assert plan(pods, 0)["role"] == "seed" and "override" in plan(pods, 0)["reason"]
    assert plan(pods, 1)["role"] == "primary"
    forced = [e for e in namespace.events() if e["reason"] == "ExecSeedForced"]
    assert [e["involvedObject"]["name"] for e in forced] == ["exec-0"]
    restart(pods, 2)
    assert plan(pods, 2)["role"] == "primary"
    writes.assert_all_on_every_pod()


def test_a_hanging_status_hook_is_named_and_stops_nothing(pods: InitPods) -> None:
    """exec-1's agent crashes and comes back with a status hook that hangs: one slow run
    changes nothing, three make it not ready naming the hook and its timeout, and its
    mariadbd (still running) is neither stopped nor started again. The mended agent
    finds it running and is ready."""
    sidecar = pods.harness.sidecars.pop(1)
    sidecar.proc.kill()
    store = store_pid(pods, 1)
    assert store is not None
    hanging = json.loads(hooks_json())
    hanging["status"] = {"command": ["sleep", "60"], "timeout": "1s"}
    pods.start_sidecar(1, env={"AGENT_EXEC_HOOKS": json.dumps(hanging)})
    reasons = pods.harness.sidecars[1].wait_reason("timed out after 1 s", timeout=30)
    assert any("status hook (sleep 60)" in r and "3 runs in a row" in r for r in reasons), \
        reasons
    assert store_pid(pods, 1) == store
    status = pods.harness.sidecars[1].status()
    assert status["exec_start"]["state"] == "running" and "primary" not in status["exec_hooks"]
    sidecar = pods.harness.sidecars.pop(1)
    sidecar.proc.kill()
    pods.start_sidecar(1)
    pods.wait_ready(1)
    assert store_pid(pods, 1) == store
    wait_until(lambda: "primary" not in pods.harness.sidecars[1].status()["exec_hooks"]
               and pods.harness.sidecars[1].status()["exec_start"]["state"] == "running",
               what="exec-1's agent finding mariadbd running, starting nothing", timeout=10)


def test_a_stuck_node_is_restarted_to_join_again(pods: InitPods,
                                                  namespace: AgentNamespace) -> None:
    """exec-1's mariadbd cuts itself off the group (gmcast.isolate=1): non-Primary for
    good, as a joiner whose IST failed is, while the other two stay Primary. Its agent,
    with a 3 s restart window, stops it by stop.sh and joins it again by start.sh: a new
    mariadbd, Synced in the group of three with every write, a Warning Event saying
    why. The agent as the example runs it then takes over again."""
    writes = Writes(pods, PODS)
    writes.write("before-stuck", 10)
    # The pods and their namespace serve the whole module: an earlier test's node may have
    # been restarted too (a joiner Galera left Disconnected after a full outage is).
    earlier = {e["metadata"]["uid"] for e in namespace.events()}
    pods.harness.sidecars.pop(1).proc.kill()  # mariadbd runs on
    pods.start_sidecar(1, env={"AGENT_EXEC_RESTART_FAILED_SECONDS": "3"})
    pods.wait_ready(1)
    store, cluster = store_pid(pods, 1), pods.cluster
    assert store is not None and isinstance(cluster, ExecGaleraCluster)
    root_sql(cluster.node_dir(1) / "run", "SET GLOBAL wsrep_provider_options='gmcast.isolate=1'")
    wait_until(lambda: store_pid(pods, 1) not in (None, store) and cluster.synced(1, 3),
               what="exec-1 stopped and joined again, Synced in the group of three",
               timeout=90)
    pods.wait_ready(1)
    [restarted] = [e for e in namespace.events() if e["reason"] == "ExecMemberRestarted"
                   and e["metadata"]["uid"] not in earlier]
    assert restarted["involvedObject"]["name"] == "exec-1"
    assert restarted["type"] == "Warning"
    assert "not in a Primary component" in restarted["message"], restarted["message"]
    # This agent found mariadbd running: its only start hook run is the restart's.
    status = status_with(pods, 1, "primary")
    assert status["exec_start"]["restarts"] == 1, status["exec_start"]
    hooks = status["exec_hooks"]
    assert hooks["stop"]["exit_code"] == 0 and hooks["primary"]["exit_code"] == 0, hooks
    writes.write("after-restart", 5)
    writes.assert_all_on_every_pod()
    pods.harness.sidecars.pop(1).proc.kill()
    pods.start_sidecar(1)
    pods.wait_ready(1)
