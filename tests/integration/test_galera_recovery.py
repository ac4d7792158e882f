"""Galera's full outage recovered by `sts-agent init` alone, on real MariaDB + galera-4: the
vote seeds the pod with the latest position and no acknowledged write is lost; a pod that
starts alone never bootstraps; two histories are refused; a wiped volume rejoins by a
full copy. One cluster serves the module: each scenario begins and ends with it whole."""

from __future__ import annotations

import concurrent.futures
import json
import re
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.stores.galera.recovery import RECOVERY_SEED
from player.agentnamespace import AgentNamespace
from player.pods import InitPods
from player.stores.galera import TEST_VARS, GaleraHarness, galera_plan, root_sql
from player.wait import wait_until
from tests.integration.conftest import require_store, voting_pods
from tests.integration.writes import Writes, kill, restart

pytestmark = pytest.mark.integration

PODS = (0, 1, 2)
# A sidecar's /status is its last poll (every 0.2 s, the player's Sidecar) of its own node,
# whose state moves after its peers turned ready: its group grows as they join, and a
# donor of their state transfer is Synced again only after it (a full copy of this
# module's small data set takes seconds). Many of both.
NODE_SETTLES_SECONDS = 60.0


# Three Galera pods started through init, every one Ready.
namespace, pods = voting_pods("galera", GaleraHarness,
                              requires=lambda: require_store("galera"))


def plan(pods: InitPods, ordinal: int) -> dict[str, Any]:
    """What the pod's last init decided (its galera_plan log line)."""
    found = galera_plan(pods.init_results[ordinal].stderr)
    assert found is not None, f"galera-{ordinal}'s init logged no plan"
    return found


def start_in_background(pods: InitPods, ordinal: int,
                        pool: concurrent.futures.ThreadPoolExecutor
                        ) -> concurrent.futures.Future[None]:
    return pool.submit(restart, pods, ordinal)


def test_full_outage_seeds_the_latest_position_and_loses_nothing(pods: InitPods) -> None:
    """Writes; one pod stopped cleanly (its grastate.dat says where it stopped); more
    writes; the other two killed (grastate.dat says -1: only InnoDB's recovery knows).
    Every pod started at once: the vote seeds one of the killed two, the lower ordinal
    on a tie, and every acknowledged write is on every pod."""
    writes = Writes(pods, PODS)
    writes.write("before", 20)
    pods.stop(2)
    writes.write("after-stop", 20)
    kill(pods, 0)
    kill(pods, 1)
    restart(pods, *PODS)
    assert plan(pods, 0)["state"] == "seed" and "latest position" in plan(pods, 0)["reason"]
    assert "tied with 1" in plan(pods, 0)["reason"]
    assert plan(pods, 1)["state"] == plan(pods, 2)["state"] == "join"
    writes.assert_all_on_every_pod()
    writes.write("recovered", 5)
    writes.assert_all_on_every_pod()


def test_a_pod_starting_alone_never_bootstraps(pods: InitPods) -> None:
    """After a full outage only the pod with the oldest position starts: its init waits,
    naming the ballots it lacks, and its mariadbd is never started; once the others
    start, the one with the latest position seeds."""
    writes = Writes(pods, PODS)
    pods.stop(0)  # stopped cleanly first: the oldest position
    writes.write("without-0", 10)
    kill(pods, 1)
    kill(pods, 2)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        alone = start_in_background(pods, 0, pool)
        log = pods.init_log(0)
        wait_until(lambda: "waiting for the ballots of ordinals 1, 2" in log.read_text(),
                   what="galera-0's init waiting for the ballots of 1 and 2", timeout=60)
        assert not pods.cluster.nodes[0].running, "galera-0 started with ballots missing"
        restart(pods, 1, 2)
        alone.result(timeout=120)
    assert plan(pods, 1)["state"] == "seed"
    writes.assert_all_on_every_pod()


def test_the_override_seeds_while_a_pod_is_missing(pods: InitPods,
                                                   namespace: AgentNamespace) -> None:
    """A full outage after which galera-2 does not come back (its node lost): the vote
    would wait for it. With AGENT_GALERA_FORCE_SEED_ORDINAL=1 on the other two, galera-1
    seeds without the vote, loudly (a Warning Event), and galera-0 joins it; galera-2,
    back later without the override, joins; nothing acknowledged is lost."""
    writes = Writes(pods, PODS)
    writes.write("before-override", 10)
    for ordinal in PODS:
        kill(pods, ordinal)
    pods.start(0, 1, env={"AGENT_GALERA_FORCE_SEED_ORDINAL": "1"})
    pods.wait_ready(0, 1)
    assert plan(pods, 1)["state"] == "seed", plan(pods, 1)
    assert "forced by the operator's override" in plan(pods, 1)["reason"]
    assert plan(pods, 0)["state"] == "join", plan(pods, 0)
    assert "galera_seed_forced" in pods.init_results[1].stderr
    warned = [e for e in namespace.events() if e["reason"] == "GaleraSeedForced"]
    assert [e["involvedObject"]["name"] for e in warned] == ["galera-1"], warned
    writes.write("without-2", 5)
    restart(pods, 2)
    assert plan(pods, 2)["state"] == "join"
    writes.assert_all_on_every_pod()


def test_two_histories_are_refused_and_a_wiped_volume_rejoins(
        pods: InitPods, namespace: AgentNamespace) -> None:
    """A volume from another cluster: every init refuses, naming both histories (nothing
    starts; a Warning Event on each pod). That volume wiped instead: the others' latest
    seeds, the wiped pod takes a full copy, nothing is lost."""
    writes = Writes(pods, PODS)
    writes.write("before-wipe", 10)
    for ordinal in PODS:
        kill(pods, ordinal)
    grastate = pods.data_dir(2) / "grastate.dat"
    original = grastate.read_text()
    foreign = re.sub(r"uuid:\s*\S+", "uuid:    11111111-2222-3333-4444-555555555555",
                     original)
    grastate.write_text(foreign.replace("seqno:   -1", "seqno:   99"))
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        # A refusal is waited out to the init's deadline (peers still counting must see
        # every ballot): a short one here.
        results = list(pool.map(lambda o: pods.init(
            o, check=False, env={"AGENT_DNS_WAIT_TIMEOUT_SECONDS": "12"}), PODS))
    for ordinal, result in zip(PODS, results, strict=True):
        assert result.returncode != 0, f"galera-{ordinal} started beside another history"
        assert "2 different cluster histories" in result.stderr
        assert "11111111-2222-3333-4444-555555555555: ordinals 2" in result.stderr
        assert not pods.cluster.nodes[ordinal].running
    blocked = [e for e in namespace.events() if e["reason"] == "GaleraStartBlocked"]
    assert {e["involvedObject"]["name"] for e in blocked} == {f"galera-{o}" for o in PODS}
    assert all("2 different cluster histories" in e["message"] for e in blocked), [
        e["message"] for e in blocked]
    shutil.rmtree(pods.data_dir(2))
    restart(pods, *PODS)
    assert plan(pods, 2)["state"] == "join"
    writes.assert_all_on_every_pod()


def test_a_killed_pod_rejoins_by_ist_from_its_kept_position(pods: InitPods) -> None:
    """One pod killed while the others serve: its init recovers the position from InnoDB,
    keeps it on the volume (sts-agent-position.json) and in grastate.dat before the
    start, finds a Primary component and joins; mariadbd then catches up by IST (only
    the write sets it missed), not a full copy."""
    writes = Writes(pods, PODS)
    writes.write("before-kill", 5)
    kill(pods, 1)
    writes.write("while-down", 5)
    log = pods.data_dir(1).parent / pods.cluster.log_name
    start = log.stat().st_size
    restart(pods, 1)
    decided = plan(pods, 1)
    assert decided["state"] == "join" and decided["start_position"]
    kept = json.loads((pods.data_dir(1) / "sts-agent-position.json").read_text())
    assert f"{kept['uuid']}:{kept['seqno']}" == decided["start_position"]
    with log.open() as text:
        text.seek(start)
        started = text.read()
    assert "Prepared IST receiver" in started, "galera-1 took a full copy, not IST"
    writes.assert_all_on_every_pod()


def test_the_sidecar_judges_galera_and_never_fails_liveness(pods: InitPods) -> None:
    """Ready: /status and /metrics carry the cluster's size, state and last committed,
    the full-copy method mariadbd reports (the harness's rsync), and the members by
    address. Two of three killed: the survivor is non-Primary, its
    /readyz says so by name, and /livez stays 200 (liveness never follows the cluster).
    The two restart while it runs: their inits see it running (it cannot vote) and join
    it, never bootstrapping; Galera re-forms the last Primary component."""
    sidecar = pods.harness.sidecars[0]
    addresses = sorted(f"{pods.cluster.ip(o)}:3306" for o in PODS)

    def settled() -> bool:
        view = sidecar.status()["view"]["local"]
        found = (view["details"]["cluster_size"], view["details"]["local_state_comment"],
                 view["details"]["sst_method"], sorted(m["address"] for m in view["members"]))
        if found != (3, "Synced", TEST_VARS["sst_method"], addresses):
            raise AssertionError(f"size, state, copy method, members: {found}")
        return True

    wait_until(settled, what="galera-0's view: Synced in the group of three",
               timeout=NODE_SETTLES_SECONDS)
    metrics = sidecar.metrics()
    assert 'sts_agent_store_detail{detail="cluster_size"} 3.0' in metrics
    assert 'sts_agent_check_ok{check="galera_primary"} 1.0' in metrics

    writes = Writes(pods, PODS)
    writes.write("before-partition", 5)
    kill(pods, 1)
    kill(pods, 2)
    reasons = sidecar.wait_reason("not in the Primary component", timeout=30)
    assert any("non-Primary" in r for r in reasons), reasons
    assert sidecar.livez()[0] == 200
    restart(pods, 1, 2)
    sidecar.wait_ready(timeout=60)
    for ordinal in (1, 2):
        assert plan(pods, ordinal)["state"] == "join"
        assert "running outside a Primary component" in plan(pods, ordinal)["reason"]
    writes.assert_all_on_every_pod()


def test_a_joiner_copying_everything_stays_live(pods: InitPods) -> None:
    """A wiped pod rejoins by a full copy, with no SQL socket while it copies: its
    sidecar is alive all along and unready, naming why, until the copy is in."""
    writes = Writes(pods, PODS)
    writes.write("before-copy", 5)
    pods.stop(1, wipe=True)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        started = pool.submit(pods.start, 1)
        wait_until(lambda: 1 in pods.harness.sidecars, what="galera-1's sidecar", timeout=60)
        sidecar = pods.harness.sidecars[1]
        lives, unready = [], []
        deadline = time.monotonic() + 90
        while (state := sidecar.readyz())[0] != 200:  # every answer sampled, none skipped
            lives.append(sidecar.livez()[0])
            if state[0] == 503:
                unready.append(state[1])
            assert time.monotonic() < deadline, "galera-1 not ready 90 s after its start"
        started.result(timeout=60)
    assert set(lives) == {200}, f"liveness failed during the copy: {lives}"
    assert unready, "the copy was never seen (galera-1 ready at once)"
    writes.assert_all_on_every_pod()


def test_scale_down_leaves_one_at_a_time_and_back(pods: InitPods,
                                                  namespace: AgentNamespace) -> None:
    """Scaled 3 → 1 (Parallel: both pods go at once). Each store's preStop (GET
    /leave/wait) holds mariadbd until the agent says it is its turn: galera-2 first,
    galera-1 once 2 is out of the view; each clean stop is the leave, confirmed on a
    peer; galera-0 is Primary at every step. Scaled back to 3, both rejoin."""
    writes = Writes(pods, PODS)
    writes.write("before-scale-down", 5)
    namespace.scale("galera", 1)
    released: list[int] = []
    lock = threading.Lock()
    primary_samples: list[str] = []

    def leave(ordinal: int) -> str:
        sidecar = pods.harness.sidecars[ordinal]
        answer = httpx.get(sidecar.url + "/leave/wait", timeout=60)  # the store's preStop
        with lock:
            released.append(ordinal)
        pods.cluster.nodes[ordinal].proc.stop()  # type: ignore[union-attr]
        sidecar.proc.stop(timeout=60)  # SIGTERM: the agent confirms on a peer, then exits
        pods.harness.sidecars.pop(ordinal)
        return str(answer.json()["leave"]["reason"])

    # galera-0's component, sampled over one connection held open (a new connection's
    # handshake is what mariadbd aborts now and then during a configuration change).
    with (pods.harness.cluster.status_session(0) as galera_0,
          concurrent.futures.ThreadPoolExecutor(2) as pool):
        leaving = {o: pool.submit(leave, o) for o in (1, 2)}
        while not all(f.done() for f in leaving.values()):
            primary_samples.append(galera_0().get("wsrep_cluster_status", "?"))
        reasons = {o: f.result() for o, f in leaving.items()}
    assert released == [2, 1], f"left in the order {released}"
    assert "turn" in reasons[1] and "turn" in reasons[2]
    assert set(primary_samples) == {"Primary"}, f"galera-0 lost Primary: {primary_samples}"
    assert pods.harness.cluster.status(0)["wsrep_cluster_size"] == "1"
    for ordinal in (1, 2):
        agent_log = (pods.harness.workdir / f"galera-{ordinal}.agent.log").read_text()
        assert '"leave_confirmed"' in agent_log, (
            f"galera-{ordinal}'s leave was not confirmed on a peer")
    assert "MemberRemoved" in namespace.event_reasons()
    writes.write("at-one", 5)

    namespace.scale("galera", 3)
    restart(pods, 1, 2)
    writes.assert_all_on_every_pod()


def test_a_rolling_restart_needs_no_vote(pods: InitPods) -> None:
    """Each pod in turn stopped cleanly and started through init, highest first: every
    init finds a Primary component and joins (IST); nothing is lost."""
    writes = Writes(pods, PODS)
    for ordinal in (2, 1, 0):
        writes.write(f"roll-{ordinal}", 3)
        pods.stop(ordinal)
        writes.write(f"without-{ordinal}", 3)
        restart(pods, ordinal)
        assert plan(pods, ordinal)["state"] == "join"
        assert plan(pods, ordinal)["reason"] == "a peer is in a Primary component"
    writes.assert_all_on_every_pod()


def test_the_seed_s_mariadbd_restarted_alone_joins(pods: InitPods) -> None:
    """One pod stopped cleanly (Galera drops its saved view: no pc.recovery), then a
    power cut, and the vote seeds a pod (init renders wsrep-new-cluster). Once another
    member has joined, its sidecar takes the flag out of the rendered galera.cnf. Then
    the seed's mariadbd alone crashes and starts again from that config, as a container
    restart does (init does not run): it joins the Primary component, where with the
    flag Galera refused to start it (safe_to_bootstrap 0) for good."""
    writes = Writes(pods, PODS)
    writes.write("before-power-cut", 5)
    pods.stop(2)
    for ordinal in PODS[:2]:
        kill(pods, ordinal)
    restart(pods, *PODS)
    seed = next(o for o in PODS if plan(pods, o)["state"] == "seed")
    config = pods.config_dir(seed) / "galera.cnf"
    wait_until(lambda: "\nwsrep-new-cluster" not in config.read_text(),
               what=f"galera-{seed}'s sidecar to drop wsrep-new-cluster", timeout=30)
    assert "dropped by the sts-agent sidecar" in config.read_text()
    writes.write("before-crash", 5)
    pods.harness.kill_store(seed)
    writes.write("while-the-seed-is-down", 5)
    pods.start_store(seed)  # the container's restart: the config as it is now
    pods.harness.cluster.wait_synced(seed, size=len(PODS))
    pods.harness.sidecars[seed].wait_ready(timeout=60)
    writes.assert_all_on_every_pod()


def test_a_node_stuck_outside_the_primary_component_is_restarted(
        pods: InitPods, namespace: AgentNamespace) -> None:
    """galera-1's mariadbd cuts itself off the group (gmcast.isolate=1): non-Primary for
    good, as a joiner whose IST failed is, while the other two stay Primary. Its sidecar,
    with a 3 s window, writes the restart marker; the test plays the kubelet whose
    liveness probe fails on it (mariadbd stopped, started again from its config). The new
    mariadbd joins, Synced in the group of three with every write; the marker is gone, a
    Warning Event says why. Nothing is marked while the node answers from a Primary
    component."""
    writes = Writes(pods, PODS)
    writes.write("before-stuck", 10)
    earlier = {e["metadata"]["uid"] for e in namespace.events()}
    marker = pods.config_dir(1) / "restart-mariadbd"
    pods.start_sidecar(1, env={"AGENT_GALERA_RESTART_MARKER": str(marker),
                               "AGENT_GALERA_RESTART_NON_PRIMARY_SECONDS": "3"})
    pods.harness.sidecars[1].wait_ready(timeout=60)
    cluster = pods.harness.cluster
    root_sql(cluster.node_dir(1) / "run",
             "SET GLOBAL wsrep_provider_options='gmcast.isolate=1'")
    wait_until(marker.exists, what="galera-1's sidecar to write the restart marker",
               timeout=60)
    assert "answered non-Primary" in marker.read_text(), marker.read_text()
    writes.write("while-1-is-stuck", 5)
    node = cluster.nodes[1]
    assert node.proc is not None
    node.proc.stop()  # the kubelet: preStop returns at once on a restart, then SIGTERM
    pods.start_store(1)
    cluster.wait_synced(1, size=len(PODS))
    wait_until(lambda: not marker.exists(),
               what="galera-1's sidecar to remove the marker of the restarted node",
               timeout=30)
    pods.harness.sidecars[1].wait_ready(timeout=60)
    [restarted] = [e for e in namespace.events() if e["reason"] == "GaleraMemberRestarted"
                   and e["metadata"]["uid"] not in earlier]
    assert restarted["involvedObject"]["name"] == "galera-1"
    assert restarted["type"] == "Warning"
    writes.write("after-restart", 5)
    writes.assert_all_on_every_pod()
    assert not marker.exists()  # a node in the Primary component is never marked
    pods.start_sidecar(1)
    pods.harness.sidecars[1].wait_ready(timeout=60)


def power_cut(pods: InitPods) -> None:
    """Every pod's mariadbd and sidecar killed at once, nothing flushed or said: the
    group's last Primary view stays in each gvwstate.dat."""
    for ordinal in PODS:
        sidecar = pods.harness.sidecars.pop(ordinal)
        sidecar.proc.kill()
    for ordinal in PODS:
        pods.harness.kill_store(ordinal)


def mariadbd_log(pods: InitPods, ordinal: int) -> str:
    cluster = pods.harness.cluster
    path: Path = cluster.node_dir(ordinal) / cluster.log_name
    return path.read_text(errors="replace")


def one_primary_component(pods: InitPods) -> None:
    """Every pod Synced in the same Primary component of all: one history, one view."""
    seen = {o: pods.harness.cluster.status(o) for o in PODS}
    shared = {(s.get("wsrep_cluster_status"), s.get("wsrep_cluster_size"),
               s.get("wsrep_cluster_state_uuid"), s.get("wsrep_cluster_conf_id"))
              for s in seen.values()}
    assert len(shared) == 1, seen
    status, size, _, _ = shared.pop()
    assert (status, size) == ("Primary", str(len(PODS))), seen


def test_a_power_cut_re_forms_the_last_view_with_no_state_transfer(pods: InitPods) -> None:
    """Every pod's gvwstate.dat holds the same last Primary view: the vote's seed starts
    without bootstrapping, the others join it as any seed, and Galera re-forms the view
    itself (pc.recovery) once all are back, with no state transfer; the seed's sidecar
    never bootstraps and drops init's decision. Nothing acknowledged is lost."""
    writes = Writes(pods, PODS)
    writes.write("before-the-cut", 20)
    before = {o: len(mariadbd_log(pods, o)) for o in PODS}
    power_cut(pods)
    restart(pods, *PODS)
    decided = {o: plan(pods, o) for o in PODS}
    [seed] = [o for o, p in decided.items() if p["state"] == "recover"]
    assert "pc.recovery" in decided[seed]["reason"], decided[seed]
    assert all(p["state"] == "join" for o, p in decided.items() if o != seed), decided
    logs = {o: mariadbd_log(pods, o)[before[o]:] for o in PODS}
    assert any("promote to primary component" in text for text in logs.values()), (
        "no node logged pc.recovery's promotion")
    for ordinal, text in logs.items():
        assert "start_prim is enabled" not in text, f"galera-{ordinal} bootstrapped"
        assert "State transfer required" not in text, f"galera-{ordinal} needed a transfer"
    armed = pods.config_dir(seed) / RECOVERY_SEED
    wait_until(lambda: not armed.exists(),
               what=f"galera-{seed}'s sidecar to drop init's pc.recovery decision", timeout=30)
    sidecar_log = pods.harness.sidecars[seed].proc.log_path.read_text()
    assert '"galera_recovery_disarmed"' in sidecar_log
    assert '"galera_recovery_bootstrap"' not in sidecar_log
    one_primary_component(pods)
    writes.assert_all_on_every_pod()
    writes.write("after-the-cut", 5)
    writes.assert_all_on_every_pod()


def test_a_member_missing_after_a_power_cut_is_left_to_join_later(
        pods: InitPods, namespace: AgentNamespace) -> None:
    """The same power cut, but one pod's mariadbd does not come back after its init (its
    node lost): pc.recovery needs every member and never forms the view. After a 2 s
    wait here, the seed's sidecar adds wsrep-new-cluster, its position and
    pc.recovery=false to init's config and writes the restart marker, loudly (a Warning
    Event); the test plays the kubelet whose liveness probe fails on it. The new
    mariadbd seeds the same history, the restored member joins it, writes go on without
    the missing pod, which joins when it is back. One Primary component at the end,
    nothing acknowledged is lost, and the added options are gone again."""
    writes = Writes(pods, PODS)
    writes.write("before-the-second-cut", 10)
    earlier = {e["metadata"]["uid"] for e in namespace.events()}
    power_cut(pods)
    joiners: list[int] = []
    seeds: list[int] = []

    def init(ordinal: int) -> None:
        pods.init(ordinal)
        if plan(pods, ordinal)["state"] == "recover":
            seeds.append(ordinal)
            pods.start_store(ordinal)
        else:
            joiners.append(ordinal)

    with concurrent.futures.ThreadPoolExecutor(len(PODS)) as pool:
        for future in [pool.submit(init, o) for o in PODS]:
            future.result()
    [seed] = seeds
    *started, missing = sorted(joiners)
    marker = pods.config_dir(seed) / "restart-mariadbd"
    for ordinal in started:
        pods.start_store(ordinal)
        pods.start_sidecar(ordinal)
    pods.start_sidecar(seed, env={"AGENT_GALERA_RESTART_MARKER": str(marker),
                                  "AGENT_GALERA_RECOVERY_BOOTSTRAP_SECONDS": "2"})
    wait_until(marker.exists, what=f"galera-{seed}'s sidecar to mark mariadbd for a "
                                   "restart that seeds", timeout=60)
    config = pods.config_dir(seed) / "galera.cnf"
    added = config.read_text().split("# sts-agent sidecar: ", 1)[-1]
    assert "\nwsrep-new-cluster\n" in added and "pc.recovery=false" in added, added
    assert "wsrep_start_position = " in added, added
    node = pods.cluster.nodes[seed]
    assert node.proc is not None
    node.proc.stop()  # the kubelet: the liveness probe failed, SIGTERM
    wait_until(lambda: not marker.exists(),
               what=f"galera-{seed}'s sidecar to remove the marker once mariadbd stopped",
               timeout=30)
    pods.start_store(seed)  # the container's restart: the config as it is now
    pods.wait_ready(seed, *started)
    assert not pods.cluster.nodes[missing].running
    [bootstrapped] = [e for e in namespace.events()
                      if e["reason"] == "GaleraRecoveryBootstrapped"
                      and e["metadata"]["uid"] not in earlier]
    assert bootstrapped["involvedObject"]["name"] == f"galera-{seed}", bootstrapped
    assert "latest position" in bootstrapped["message"], bootstrapped
    assert not (pods.config_dir(seed) / RECOVERY_SEED).exists()
    wait_until(lambda: "# sts-agent sidecar: " not in config.read_text(),
               what=f"galera-{seed}'s sidecar to take out the options it added", timeout=30)
    writes.write(f"without-{missing}", 10)
    pods.start_store(missing)  # its init ran already: the join it rendered then
    pods.start_sidecar(missing)
    pods.wait_ready(missing)
    one_primary_component(pods)
    writes.assert_all_on_every_pod()
    pods.start_sidecar(seed)  # the module's cluster as the next test expects it
    pods.wait_ready(*PODS)
