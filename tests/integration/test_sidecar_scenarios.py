"""Readiness against real etcd, rqlite and Consul clusters: the same scenarios for every store."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from agent.registry import raft_stores
from player.sidecar import Sidecar
from player.stores.base import Harness
from player.wait import wait_until
from tests.integration.conftest import harness_for, ready_cluster, variants
from tests.integration.proxy import CountingProxy

pytestmark = pytest.mark.integration

STORE_NAMES = raft_stores()
# A sidecar's /status is its last poll (every 0.2 s, the player's Sidecar): what the store
# says now, it shows a poll later, or a poll after an election ends (2 s election timeout
# in the ``cluster`` fixture). Many of both on a loaded host.
VIEW_FOLLOWS_SECONDS = 15.0


def _harness(store: str, tmp_path: Path, **kwargs: object) -> Harness[Any]:
    return harness_for(store, tmp_path, **kwargs)


@pytest.fixture(params=STORE_NAMES)
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness[Any]]:
    """Three store nodes, each with its sidecar, all ready (an etcd version of the matrix
    where a test parametrizes ``cluster`` with ``variants``)."""
    harness = _harness(request.param, tmp_path, election_seconds=2.0)
    with ready_cluster(harness):
        yield harness


def _follower(cluster: Harness[Any]) -> int:
    leader = cluster.leader()
    return next(o for o in sorted(cluster.sidecars) if o != leader)


def leader_sourced_view(cluster: Harness[Any], ordinal: int) -> dict[str, Any]:
    """Sidecar ``ordinal``'s /status view once its source is what the leader the store
    names now makes it: "local" on the leader, "leader" elsewhere. The view is the
    sidecar's last poll: after an election (the cluster just formed, a heartbeat missed on
    a loaded host) it still has the old leader's side until its next poll."""
    sidecar = cluster.sidecars[ordinal]

    def agrees() -> dict[str, Any]:
        view: dict[str, Any] = sidecar.status()["view"]
        expected = "local" if ordinal == cluster.leader() else "leader"
        if view["authority_source"] != expected:
            raise AssertionError(f"authority_source {view['authority_source']!r}, "
                                 f"{expected!r} by the store's leader")
        return view

    return wait_until(agrees, what=f"{sidecar.name}'s view sourced as the store's leader says",
                      timeout=VIEW_FOLLOWS_SECONDS)


@pytest.mark.parametrize("cluster", variants(raft_stores()), indirect=True)
def test_three_nodes_ready_with_view_and_metrics(cluster: Harness[Any]) -> None:
    for ordinal, sidecar in cluster.sidecars.items():
        status, body = sidecar.readyz()
        assert status == 200, body
        assert [c["name"] for c in body["checks"]] == [
            "store_reachable", "leader_known", "member", "caught_up", "not_leaving"]
        view = leader_sourced_view(cluster, ordinal)  # "local" on the leader, else "leader"
        assert len(view["authority"]["members"]) == 3
        metrics = sidecar.metrics()
        assert "sts_agent_ready 1.0" in metrics
        assert "sts_agent_members 3.0" in metrics
        assert 'sts_agent_check_ok{check="member"} 1.0' in metrics
        assert sidecar.livez()[0] == 200
    assert cluster.sidecars[0].proc.stop() == 0, "SIGTERM ends the sidecar cleanly, exit 0"
    assert '"event": "sidecar_stop"' in cluster.sidecars[0].proc.log_path.read_text()


def test_stopped_follower_reports_store_unreachable_others_stay_ready(
        cluster: Harness[Any]) -> None:
    follower = _follower(cluster)
    others = [s for o, s in cluster.sidecars.items() if o != follower]
    cluster.stop_store(follower)
    seen: list[int] = []

    def follower_unreachable() -> bool:
        seen.extend(s.readyz()[0] for s in others)
        return any("store unreachable" in r for r in cluster.sidecars[follower].reasons())

    wait_until(follower_unreachable, what="the stopped follower's 503 store unreachable",
               timeout=30)
    for _ in range(10):  # and for a few more polls after it
        seen.extend(s.readyz()[0] for s in others)
        cluster.sidecars[follower].readyz()
    assert set(seen) == {200}, "the rest of the cluster must stay ready"
    assert cluster.sidecars[follower].livez()[0] == 200, "liveness never follows the store"
    cluster.restart_store(follower)
    cluster.sidecars[follower].wait_ready(timeout=60)


@pytest.mark.parametrize("cluster", variants(raft_stores()), indirect=True)
def test_removed_node_reports_not_a_member_within_two_polls(cluster: Harness[Any]) -> None:
    follower = _follower(cluster)
    sidecar = cluster.sidecars[follower]
    polls_before = sidecar.status()["polls"]
    cluster.remove_through_store(follower)
    polls_at_removal = sidecar.status()["polls"]
    reasons = sidecar.wait_reason("not a member", timeout=30)
    polls_after = sidecar.status()["polls"]
    # The 503 "not a member" was already there when we looked after at most two polls
    # completed past the removal; a poll in flight at removal time may predate it.
    assert polls_after - polls_at_removal <= 3, (polls_before, polls_at_removal, polls_after)
    assert any(r.startswith("not a member") for r in reasons)
    for ordinal, other in cluster.sidecars.items():
        if ordinal != follower:
            def sees_two(sidecar: Sidecar = other) -> bool:
                return len(sidecar.status()["view"]["authority"]["members"]) == 2

            wait_until(sees_two, what=f"{other.name} to see two members", timeout=30)
            assert other.readyz()[0] == 200


def test_leader_killed_no_leader_then_ready_after_election(cluster: Harness[Any]) -> None:
    leader = cluster.leader()
    survivors = {o: s for o, s in cluster.sidecars.items() if o != leader}
    cluster.kill_store(leader)
    for sidecar in survivors.values():
        sidecar.wait_reason("no leader", timeout=30)
    new_leader = wait_until(lambda: (lambda lead: lead if lead != leader else None)(
        cluster.leader()), what="a new leader", timeout=60)
    assert new_leader in survivors
    for sidecar in survivors.values():
        sidecar.wait_ready(timeout=60)
    cluster.sidecars[leader].wait_reason("store unreachable", timeout=30)
    metrics = survivors[new_leader].metrics()
    assert "sts_agent_leader_changes_total 1.0" in metrics
    cluster.restart_store(leader)
    cluster.sidecars[leader].wait_ready(timeout=60)


def test_probes_are_answered_from_cache(cluster: Harness[Any]) -> None:
    """A burst of probes causes no store request: counted at a proxy in front of the store."""
    follower = _follower(cluster)
    with CountingProxy(cluster.store_url(follower)) as proxy:
        sidecar = cluster.start_sidecar(follower, store_url=proxy.url, port=9191,
                                        name=f"proxied-{cluster.store}-{follower}",
                                        env={"AGENT_POLL_INTERVAL_SECONDS": "2",
                                             # the other members' API port (Consul's
                                             # is not in its answers): not the proxy's
                                             "AGENT_CLIENT_PORT": str(urlsplit(
                                                 cluster.store_url(follower)).port),
                                             "AGENT_STALE_AFTER_SECONDS": "60"})
        sidecar.wait_ready(timeout=30)
        polls_before, requests_before = sidecar.status()["polls"], proxy.count
        answers = [sidecar.readyz()[0] for _ in range(300)]
        polls_after, requests_after = sidecar.status()["polls"], proxy.count
    assert set(answers) == {200}
    # Requests each poll makes to the local store: etcd and rqlite two, Consul three
    # (agent/self, raft configuration, autopilot health).
    per_poll = 3 if cluster.store == "consul" else 2
    assert requests_after - requests_before <= per_poll * (polls_after - polls_before + 1), (
        f"{requests_after - requests_before} store requests for 300 probes over "
        f"{polls_after - polls_before} polls"
    )


@pytest.mark.parametrize("store", STORE_NAMES)
def test_new_node_not_ready_until_caught_up(store: str, tmp_path: Path) -> None:
    harness = _harness(store, tmp_path, sidecar_env={"AGENT_POLL_INTERVAL_SECONDS": "0.1",
                                                       "AGENT_MAX_LAG_ENTRIES": "10"})
    try:
        harness.start(3)
        harness.write_entries(3000, size=20000 if store == "rqlite" else 100)
        sidecar = harness.start_sidecar(3)
        harness.add_store(3)
        answers: list[tuple[int, list[str]]] = []

        def ready() -> bool:
            status, body = sidecar.readyz()
            answers.append((status, [c["reason"] for c in body["checks"] if not c["ok"]]))
            return status == 200

        wait_until(ready, what="the new node ready", timeout=120, interval=0.02)
        reasons = {r for _, rs in answers for r in rs}
        assert answers[0][0] == 503
        if store == "rqlite":
            # rqlite serves its API while it replays the log: the lag is visible.
            assert any(r.startswith("catching up") for r in reasons), reasons
        elif store == "consul":
            # Autopilot keeps a new server a non-voter until it is stable and caught up.
            assert any(r.startswith("not a voter") for r in reasons), reasons
        else:
            # etcd answers no client request before it has caught up: until then the
            # agent sees an unreachable store, and it never reported ready while behind.
            assert any(r.startswith("store unreachable") for r in reasons), reasons
        view = sidecar.status()["view"]
        assert view["local"]["applied_index"] >= view["authority"]["commit_index"] - 10
    except BaseException:
        print(harness.logs())
        raise
    finally:
        harness.close()


def _open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.parametrize("store", STORE_NAMES)
def test_store_answering_badly_gives_503_with_the_reason_and_nothing_leaks(
        store: str, tmp_path: Path) -> None:
    """A store behind a proxy answering 500, garbage, truncated bodies, then slowly: each
    shows as 503 with its reason, the sidecar survives, and its open files stay bounded."""
    harness = _harness(store, tmp_path)
    try:
        harness.start(3)
        follower = next(o for o in sorted(harness.sidecars) if o != harness.leader())
        with CountingProxy(harness.store_url(follower)) as proxy:
            sidecar = harness.start_sidecar(
                follower, store_url=proxy.url, port=9191, name=f"faulty-{store}-{follower}",
                env={"AGENT_CLIENT_PORT": str(urlsplit(harness.store_url(follower)).port),
                     "AGENT_STALE_AFTER_SECONDS": "0.5"})
            sidecar.wait_ready(timeout=60)
            assert sidecar.proc.process is not None
            pid = sidecar.proc.process.pid
            fds_before = _open_fds(pid)
            expected = {"500": "HTTP 500", "garbage": "not JSON", "truncated": "store unreachable",
                        "slow": "no answer within"}
            for fault, fragment in expected.items():
                proxy.fault = fault
                reasons = sidecar.wait_reason(fragment, timeout=30)
                assert reasons[0].startswith("store unreachable"), (fault, reasons)
                assert sidecar.readyz()[0] == 503
                assert sidecar.livez()[0] == 200, "liveness never follows the store"
                proxy.fault = None
                sidecar.wait_ready(timeout=30)
            fds_after = _open_fds(pid)
            assert fds_after <= fds_before + 10, (fds_before, fds_after)
            assert sidecar.proc.running, "the sidecar survived every kind of bad answer"
    except BaseException:
        print(harness.logs())
        raise
    finally:
        harness.close()
