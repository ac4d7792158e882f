"""k8s/galera on the real control plane, with the agent as a native sidecar
(k8s/native-sidecar/galera; test_helm plays the classic layout) and a writer throughout:
three pods Ready; scaled to 5, rolled, scaled back to 3 (each leaving store's preStop held
until its turn, each leave confirmed on a peer once mariadbd has exited); then a full
outage (galera-2's node shut down cleanly, more writes, the other two killed and every pod
force-deleted): the inits vote, one of the killed two seeds (its sidecar takes the
bootstrap flag out of the rendered config once the others joined), the pods come back
Ready; then galera-1 is cut off the group for good (gmcast.isolate, as a failed IST
leaves a joiner): its sidecar marks it, the kubelet's liveness probe restarts mariadbd
and it joins again; then a power cut of all three (their saved views agree): the vote's
seed starts without bootstrapping and Galera re-forms the last view (pc.recovery). Every
acknowledged write is on every pod, and the writer's history is linearizable."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from player.controlplane import ControlPlane
from player.statefulset import StatefulSetPlayer
from player.stores.galera import galera_plan, root_sql
from player.writer import writer_for
from tests.e2e.conftest import ROOT, more_writes, played
from tests.e2e.test_native_sidecar import hook_answers
from tests.e2e.test_statefulset import assert_linearizable

pytestmark = pytest.mark.e2e


@pytest.fixture
def galera(tmp_path: Path, e2e_control_plane: ControlPlane) -> Iterator[StatefulSetPlayer]:
    # A stuck member is marked after 10 s outside the Primary component (the example: 60).
    with played(ROOT / "k8s" / "native-sidecar" / "galera", "galera", tmp_path,
                e2e_control_plane,
                env={"AGENT_GALERA_RESTART_NON_PRIMARY_SECONDS": "10"}) as player:
        yield player


def plans(player: StatefulSetPlayer) -> dict[int, str]:
    """Each pod's last init decision (its galera_plan log line): seed or join."""
    found = {}
    for ordinal, pod in player.pods.items():
        plan = galera_plan(pod.log("init"))
        if plan is not None:
            found[ordinal] = str(plan["state"])
    return found


def test_scale_roll_and_power_cut_lose_nothing(galera: StatefulSetPlayer) -> None:
    sidecars = [c["name"] for c in galera.example.pod_spec["initContainers"]
                if c.get("restartPolicy") == "Always"]
    assert sidecars == ["agent"]  # the overlay is what is played
    galera.start(3)
    galera.wait_ready()
    writer = writer_for(galera).start()
    try:
        galera.scale(5)
        galera.rolling_restart()
        assert "MemberRemoved" not in galera.event_reasons()
        leaving = [galera.pods[3], galera.pods[4]]
        galera.scale(3)
        for pod in leaving:  # the store's own preStop was the trigger, and held it
            assert hook_answers(pod) == ["removed"], pod.log("agent")[-3000:]
        assert galera.event_reasons().count("MemberRemoved") == 2
        more_writes(writer, 20, "after the scale-down")
        galera.shut_down(2)
        more_writes(writer, 20, "after galera-2 stopped")
        galera.outage()
        galera.wait_ready(timeout=240)
        more_writes(writer, 20, "after the outage")
        stuck = galera.pods[1]
        before = stuck.restarts("galera")
        root_sql(stuck.volume("run"), "SET GLOBAL wsrep_provider_options='gmcast.isolate=1'")
        galera.wait_restarted(stuck, "galera", before=before, timeout=120)
        galera.wait_ready(timeout=180)
        more_writes(writer, 20, "after galera-1's mariadbd was restarted")
        decided = plans(galera)
        assert sorted(decided.values()) == ["join", "join", "seed"], decided
        seed = next(o for o, state in decided.items() if state == "seed")
        assert seed in (0, 1), f"galera-{seed} seeded, but it stopped before the last writes"
        # galera-1's sidecar marked its node (a Warning Event) and removed the marker
        # once the kubelet had restarted mariadbd: the new one runs on, its probe passing.
        assert "GaleraMemberRestarted" in galera.event_reasons()
        restarted = galera.pods[1]
        assert '"galera_member_restarted"' in restarted.log("agent"), (
            restarted.log("agent")[-3000:])
        assert restarted.restarts("galera") == before + 1
        # The seed's sidecar (uid 999, the example's mounts) took wsrep-new-cluster out
        # of init's galera.cnf once the others had joined: a restart of mariadbd alone
        # joins.
        assert '"galera_bootstrap_flag_dropped"' in galera.pods[seed].log("agent"), (
            galera.pods[seed].log("agent")[-3000:])
        # A power cut of all three: every saved view the same, Galera re-forms it.
        galera.outage()
        galera.wait_ready(timeout=240)
        more_writes(writer, 20, "after the power cut")
        restored = plans(galera)
        assert sorted(restored.values()) == ["join", "join", "recover"], restored
        assert "GaleraRecoveryBootstrapped" not in galera.event_reasons()
    finally:
        writer.stop()
    for ordinal, pod in sorted(galera.pods.items()):
        lost = writer.lost(f"mysql://{pod.ip}:3306")
        assert not lost, f"galera-{ordinal} lost {len(lost)} acknowledged writes: {lost[:5]}"
    assert_linearizable(writer)
