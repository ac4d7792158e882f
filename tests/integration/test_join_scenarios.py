"""Joining and rejoining through `sts-agent init`, on real etcd and rqlite: every start a
StatefulSet produces (fresh parallel start, one init long before the others, scale 3→1→3
with kept or lost volumes, a lost volume of a configured member, during an election or a
whole-cluster outage, init retried before the store started, all pods at once) ends with
each pod a ready voter and the cluster exactly its pods."""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.registry import STORES
from player.dns import Dnsmasq
from player.pods import InitPods
from player.wait import wait_until
from tests.integration.conftest import harness_for, split_variant, variants

pytestmark = pytest.mark.integration

# The stores whose init has pre-start work (joins decided before the store starts), and
# etcd once more at each version of the matrix.
STORE_VARIANTS = variants(name for name, spec in STORES.items() if spec.prestart and spec.raft)
ETCD_VARIANTS = [v for v in STORE_VARIANTS if split_variant(v)[0] == "etcd"]


@contextlib.contextmanager
def init_pods(variant: str, dnsmasq: Dnsmasq, workdir: Path) -> Iterator[InitPods]:
    store, _ = split_variant(variant)
    with InitPods(store, workdir, dnsmasq, harness=harness_for(variant, workdir)) as cluster:
        yield cluster


@pytest.fixture(params=STORE_VARIANTS)
def pods(request: pytest.FixtureRequest, dnsmasq: Dnsmasq, tmp_path: Path) -> Iterator[InitPods]:
    with init_pods(request.param, dnsmasq, tmp_path / "pods") as cluster:
        yield cluster


@pytest.fixture(params=ETCD_VARIANTS)
def etcd_pods(request: pytest.FixtureRequest, dnsmasq: Dnsmasq,
              tmp_path: Path) -> Iterator[InitPods]:
    with init_pods(request.param, dnsmasq, tmp_path / "pods") as cluster:
        yield cluster


def names(pods: InitPods, *ordinals: int) -> list[str]:
    return sorted(f"{pods.store}-{o}" for o in ordinals)


def init_log(pods: InitPods, ordinal: int) -> str:
    return pods.init_results[ordinal].stderr


def plan_of(pods: InitPods, ordinal: int) -> dict[str, Any]:
    """What the pod's latest init planned (its ``<store>_plan`` log event)."""
    events = [json.loads(line) for line in init_log(pods, ordinal).splitlines()
              if line.startswith("{")]
    plans = [e for e in events if e.get("event") == f"{pods.store}_plan"]
    assert plans, f"no {pods.store}_plan in the init's log:\n{init_log(pods, ordinal)}"
    plan: dict[str, Any] = plans[-1]
    return plan


def assert_one_cluster(pods: InitPods, *ordinals: int) -> None:
    """Every pod's own store (not only the leader) lists exactly these members and
    follows the same leader: two clusters formed side by side would differ."""
    expected = names(pods, *ordinals)
    leaders = set()
    for ordinal in ordinals:
        url = pods.harness.store_url(ordinal)
        with httpx.Client(timeout=5) as http:
            if pods.store == "etcd":
                members = http.post(url + "/v3/cluster/member/list", json={}).json()["members"]
                status = http.post(url + "/v3/maintenance/status", json={}).json()
                own = sorted(m.get("name", "") for m in members)
                leaders.add((status["header"]["cluster_id"], status["leader"]))
            else:
                nodes = http.get(url + "/nodes?nonvoters&ver=2").json()["nodes"]
                status = http.get(url + "/status").json()
                own = sorted(n["id"] for n in nodes)
                leaders.add(status["store"]["leader"]["node_id"])
        assert own == expected, f"{pods.store}-{ordinal} sees {own}"
    assert len(leaders) == 1, f"pods disagree on cluster/leader: {leaders}"


def put(pods: InitPods, key: str, value: str) -> None:
    wait_until(lambda: pods.harness.put(key, value), what=f"write of {key}", timeout=30)


def assert_has(pods: InitPods, ordinal: int, key: str, value: str) -> None:
    wait_until(lambda: pods.read_local(ordinal, key) == value,
               what=f"{key}={value} on {pods.store}-{ordinal}'s own copy", timeout=30)


@pytest.mark.parametrize("volumes", ["kept", "wiped"])
def test_scale_to_one_and_back(pods: InitPods, volumes: str) -> None:
    pods.start(0, 1, 2)
    pods.wait_ready(0, 1, 2)
    assert_one_cluster(pods, 0, 1, 2)
    put(pods, "w/before", "1")

    for ordinal in (2, 1):  # scale-down removes the highest ordinal first
        pods.remove(ordinal)
        pods.stop(ordinal, wipe=volumes == "wiped")
    wait_until(lambda: pods.members(0) == names(pods, 0), what="a one-member cluster",
               timeout=30)
    put(pods, "w/away", "2")

    for ordinal in (1, 2):  # OrderedReady scale-up: each after the previous is Ready
        pods.start(ordinal)
        pods.wait_ready(ordinal)
        assert "rqlite_plan" in init_log(pods, ordinal) or "etcd_plan" in init_log(pods, ordinal)
    assert pods.voters(0) == names(pods, 0, 1, 2)
    assert_one_cluster(pods, 0, 1, 2)
    for ordinal in (1, 2):
        assert_has(pods, ordinal, "w/away", "2")
        assert_has(pods, ordinal, "w/before", "1")
    if volumes == "kept":
        if pods.store == "etcd":  # the old member dir is kept aside, never deleted
            assert [p for p in pods.data_dir(2).iterdir()
                    if p.name.startswith("member.removed-")]
        else:  # rqlite 8 takes the node back with its raft state through -join
            assert "returns with its raft state" in init_log(pods, 2)


def test_lost_volume_of_a_configured_member(pods: InitPods) -> None:
    pods.start(0, 1, 2)
    pods.wait_ready(0, 1, 2)
    put(pods, "w/k", "v")
    pods.stop(2, wipe=True)  # no removal: the configuration still lists it
    pods.start(2)
    pods.wait_ready(2)
    assert "removed" in init_log(pods, 2)
    assert pods.voters(0) == names(pods, 0, 1, 2)
    assert_one_cluster(pods, 0, 1, 2)
    assert_has(pods, 2, "w/k", "v")


def test_lost_volume_while_the_cluster_has_no_leader(pods: InitPods) -> None:
    """A wiped bootstrap member inits while its peers answer but elect no leader (the
    leader is down and one voter cannot win alone). It must not bootstrap or rejoin as a
    voter under its old entry: with no log and no vote record its vote could elect a
    leader missing committed writes. It waits; once a leader is back it is removed and
    joins anew."""
    pods.start(0, 1, 2)
    pods.wait_ready(0, 1, 2)
    put(pods, "w/k", "v")
    before = {m["name"]: m["id"] for m in pods.authority(0)["members"]}
    pods.stop(0, wipe=True)  # no removal: the configuration still lists it
    leader = pods.harness.leader()
    pods.stop(leader)
    survivor = ({1, 2} - {leader}).pop()
    result = pods.init(0, env={"AGENT_DNS_WAIT_TIMEOUT_SECONDS": "8"}, check=False)
    assert result.returncode != 0, f"init went ahead without a leader:\n{result.stderr}"
    why = "remove_member did not succeed" if pods.store == "etcd" else "knows no leader"
    assert why in result.stderr
    assert pods.harness.running() == [survivor]  # nothing started, nothing bootstrapped
    pods.start(leader)
    pods.init(0)
    # Joined anew, never bootstrapped. Who dropped the old entry varies: this init, or the
    # waiting one before it (it found the old leader still leading for a moment, without
    # its quorum, and proposed the removal, which the leader commits once its quorum is
    # back). Either way the drop is committed before the store starts.
    assert plan_of(pods, 0)["state"] == ("existing" if pods.store == "etcd" else "join")
    if pods.store == "rqlite":
        status = pods.harness.cluster.status(pods.harness.leader())
        listed = [n["id"] for n in status["store"]["nodes"]]
        assert "rqlite-0" not in listed, f"rqlite-0 would start under its old entry: {listed}"
        raft = status["store"]["raft"]
        assert int(raft["latest_configuration_index"]) <= int(raft["commit_index"]), raft
    pods.start_store(0)
    pods.start_sidecar(0)
    pods.wait_ready(0, 1, 2)
    if pods.store == "etcd":
        # A new member: the old entry went first.
        after = {m["name"]: m["id"] for m in pods.authority(survivor)["members"]}
        assert after[f"{pods.store}-0"] != before[f"{pods.store}-0"]
    assert pods.voters(survivor) == names(pods, 0, 1, 2)
    assert_one_cluster(pods, 0, 1, 2)
    assert_has(pods, 0, "w/k", "v")


def test_lost_volume_in_a_whole_cluster_outage(pods: InitPods) -> None:
    """Every pod down, pod 0's volume lost, and pod 0's init runs first: no peer answers
    (their stores are down, their inits not started). It must not bootstrap: it would
    come back under its old entry (etcd gives it its old member id) with no log and no
    vote record. It waits until the peers are back; a leader then drops its old entry
    and it joins anew, the data kept."""
    pods.start(0, 1, 2)
    pods.wait_ready(0, 1, 2)
    put(pods, "w/k", "v")
    before = {m["name"]: m["id"] for m in pods.authority(0)["members"]}
    for ordinal in (0, 1, 2):
        pods.stop(ordinal, wipe=ordinal == 0)
    result = pods.init(0, env={"AGENT_DNS_WAIT_TIMEOUT_SECONDS": "6"}, check=False)
    assert result.returncode != 0, f"init bootstrapped with no peer answering:\n{result.stderr}"
    assert "not bootstrapping: no answer from" in result.stderr
    assert pods.harness.running() == []  # nothing started, nothing bootstrapped
    pods.start(0, 1, 2)  # the whole StatefulSet back at once (podManagementPolicy: Parallel)
    pods.wait_ready(0, 1, 2)
    after = {m["name"]: m["id"] for m in pods.authority(1)["members"]}
    if pods.store == "etcd":
        assert after[f"{pods.store}-0"] != before[f"{pods.store}-0"]
    assert "lost its" in init_log(pods, 0)
    assert pods.voters(1) == names(pods, 0, 1, 2)
    assert_one_cluster(pods, 0, 1, 2)
    assert_has(pods, 0, "w/k", "v")


def test_first_start_waits_for_every_bootstrap_member(pods: InitPods) -> None:
    """A first start where pod 0's init runs long before the others: it waits for them
    to say they have no state (each init answers GET /init while it runs) instead of
    bootstrapping on silence; then the three form one cluster."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        first = pool.submit(pods.init, 0)
        log = pods.init_log(0)
        wait_until(lambda: first.done() or (log.exists()
                   and "not bootstrapping: no answer from" in log.read_text()),
                   what=f"{pods.store}-0's init to wait for its peers", timeout=30)
        assert not first.done(), f"init bootstrapped alone:\n{init_log(pods, 0)}"
        says = httpx.get(f"http://{pods.cluster.ip(0)}:9090/init", timeout=5).json()
        assert says == {"pod": f"{pods.store}-0", "store": pods.store, "has_state": False}
        pods.start(1, 2)
        first.result(timeout=60)
    pods.start_store(0)
    pods.start_sidecar(0)
    pods.wait_ready(0, 1, 2)
    assert pods.voters(0) == names(pods, 0, 1, 2)
    assert_one_cluster(pods, 0, 1, 2)


def test_init_retried_before_the_store_started(pods: InitPods) -> None:
    """A crash between init's membership change and the store's start: the pod's init
    runs again and must not add a second entry."""
    pods.start(0, 1, 2)
    pods.wait_ready(0, 1, 2)
    pods.init(3)
    pods.init(3)
    if pods.store == "etcd":
        assert "never started" in init_log(pods, 3)
    pods.start_store(3)
    pods.start_sidecar(3)
    pods.wait_ready(3)
    assert pods.voters(0) == names(pods, 0, 1, 2, 3)
    assert_one_cluster(pods, 0, 1, 2, 3)


def test_all_pods_restart_at_once(pods: InitPods) -> None:
    pods.start(0, 1, 2)
    pods.wait_ready(0, 1, 2)
    put(pods, "w/k", "v")
    before = {m["name"]: m["id"] for m in pods.authority(0)["members"]}
    for ordinal in (0, 1, 2):
        pods.stop(ordinal)
    pods.start(0, 1, 2)
    pods.wait_ready(0, 1, 2)
    after = {m["name"]: m["id"] for m in pods.authority(0)["members"]}
    assert after == before  # re-formed from the data: no membership change
    assert_one_cluster(pods, 0, 1, 2)
    for ordinal in (0, 1, 2):
        assert "restart" in init_log(pods, ordinal)
        assert_has(pods, ordinal, "w/k", "v")


def test_no_join_without_quorum(pods: InitPods) -> None:
    """With two of three voters down a new member could not be committed: init says why,
    keeps trying until its deadline, exits non-zero and changes nothing."""
    pods.start(0, 1, 2)
    pods.wait_ready(0, 1, 2)
    before = pods.members(0)
    pods.stop(1)
    pods.stop(2)
    result = pods.init(3, env={"AGENT_DNS_WAIT_TIMEOUT_SECONDS": "6"}, check=False)
    assert result.returncode != 0
    why = "voters answer" if pods.store == "etcd" else "waiting for a leader"
    assert why in result.stderr
    pods.start(1, 2)
    pods.wait_ready(0, 1, 2)
    assert pods.members(0) == before


def test_etcd_data_moved_aside_stays_bounded(dnsmasq: Dnsmasq, tmp_path: Path) -> None:
    """Scaled down and up twice on a kept volume: one copy of old data, not one a cycle
    (before, every cycle left a full copy until the volume was full)."""
    with init_pods("etcd", dnsmasq, tmp_path / "pods") as pods:
        pods.start(0, 1, 2)
        pods.wait_ready(0, 1, 2)
        for _ in range(2):
            pods.remove(2)
            pods.stop(2)
            wait_until(lambda: pods.members(0) == names(pods, 0, 1),
                       what="etcd-2 out of the cluster", timeout=30)
            pods.start(2)
            pods.wait_ready(2)
        copies = [p.name for p in pods.data_dir(2).iterdir()
                  if p.name.startswith("member.removed-")]
        assert len(copies) == 1, copies
        assert "older_copies_deleted" in init_log(pods, 2)
        assert pods.voters(0) == names(pods, 0, 1, 2)


def test_etcd_old_volume_restored_under_a_new_member(etcd_pods: InitPods) -> None:
    """An old copy of a pod's volume comes back after the pod rejoined as a new member:
    etcd alone crash-loops ("member ID mismatch"); init reads the member id in the WAL,
    moves the data aside and joins anew."""
    pods = etcd_pods
    pods.start(0, 1, 2)
    pods.wait_ready(0, 1, 2)
    old_id = {m["name"]: m["id"] for m in pods.authority(0)["members"]}["etcd-2"]
    pods.stop(2)
    backup = pods.workdir / "etcd-2-backup"
    shutil.copytree(pods.data_dir(2), backup)
    pods.remove(2)
    pods.stop(2, wipe=True)
    pods.start(2)
    pods.wait_ready(2)
    new_id = {m["name"]: m["id"] for m in pods.authority(0)["members"]}["etcd-2"]
    assert new_id != old_id
    pods.stop(2)
    shutil.rmtree(pods.data_dir(2))
    shutil.copytree(backup, pods.data_dir(2))
    pods.start(2)
    pods.wait_ready(2)
    assert f"the data belongs to member {old_id}" in init_log(pods, 2)
    assert pods.voters(0) == names(pods, 0, 1, 2)
    assert_one_cluster(pods, 0, 1, 2)
