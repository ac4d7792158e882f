"""Consul-only scenarios on real servers: scale 3→5 through autopilot's promotion, and a
server that comes back on another address rejoins with no manual force-leave."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from player.stores.base import loopback
from player.stores.consul import ConsulHarness
from player.wait import wait_until
from tests.integration.conftest import ready_cluster, require_store

pytestmark = pytest.mark.integration


@pytest.fixture
def consul(tmp_path: Path) -> Iterator[ConsulHarness]:
    require_store("consul")
    harness = ConsulHarness(tmp_path, sidecar_env={"AGENT_POLL_INTERVAL_SECONDS": "0.2"})
    with ready_cluster(harness):
        yield harness


def voters(harness: ConsulHarness) -> dict[str, bool]:
    """Node name -> voter, from the leader's raft configuration."""
    return {s["Node"]: bool(s["Voter"]) for s in harness.cluster.configuration()}


def test_scale_three_to_five_new_servers_become_ready_voters(consul: ConsulHarness) -> None:
    seen: dict[int, set[str]] = {3: set(), 4: set()}
    statuses: dict[int, int] = {}
    started = threading.Event()
    done = threading.Event()

    def sample() -> None:
        """Every sidecar's /readyz from the moment it starts (a new server may become a
        voter while the next one is still starting: sampling only afterwards missed it)."""
        with httpx.Client(timeout=2) as http:
            while not done.is_set():
                for ordinal, reasons in seen.items():
                    sidecar = consul.sidecars.get(ordinal)
                    if sidecar is None:
                        continue
                    try:
                        answer = http.get(sidecar.url + "/readyz")
                        body = answer.json()
                    except (httpx.HTTPError, ValueError):
                        continue
                    reasons.update(c["reason"] for c in body["checks"] if not c["ok"])
                    statuses[ordinal] = answer.status_code
                started.set()

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        for ordinal in (3, 4):
            consul.start_sidecar(ordinal)
            consul.add_store(ordinal)
        wait_until(lambda: started.is_set() and all(statuses.get(o) == 200 for o in seen),
                   what="consul-3 and consul-4 ready", timeout=90, interval=0.05)
    finally:
        done.set()
        sampler.join(timeout=10)
    # Autopilot holds a new server as a non-voter until it is stable: not ready then.
    for ordinal, reasons in seen.items():
        assert any(r.startswith(("not a voter", "not a member", "store unreachable",
                                 "no leader")) for r in reasons), (ordinal, reasons)
    assert voters(consul) == {f"consul-{o}": True for o in range(5)}
    for sidecar in consul.sidecars.values():
        assert sidecar.readyz()[0] == 200
        assert len(sidecar.status()["view"]["authority"]["members"]) == 5


def test_server_back_on_a_new_address_rejoins_without_force_leave(
        consul: ConsulHarness) -> None:
    assert consul.put("w/before", "1")
    follower = next(o for o in (1, 2, 0) if o != consul.leader())
    old = {s["Node"]: s for s in consul.cluster.configuration()}[f"consul-{follower}"]
    consul.sidecars[follower].stop()
    consul.stop_store(follower)
    assert consul.put("w/while-away", "2")
    new_ip = loopback(41, follower + 1)
    consul.cluster.move(follower, new_ip)
    # The pod's sidecar, on the pod's new address. No lag tolerated: "ready" then means
    # it has applied everything the leader had, so the write made while away is there.
    consul.start_sidecar(follower, env={"AGENT_MAX_LAG_ENTRIES": "0"})

    def moved() -> bool:
        servers = {s["Node"]: s for s in consul.cluster.configuration()}
        entry = servers.get(f"consul-{follower}")
        return (len(servers) == 3 and entry is not None
                and entry["Address"] == f"{new_ip}:8300" and bool(entry["Voter"]))

    wait_until(moved, what=f"consul-{follower} in the configuration at {new_ip}",
               timeout=90)
    new = {s["Node"]: s for s in consul.cluster.configuration()}[f"consul-{follower}"]
    assert new["ID"] == old["ID"], "the same server (node id kept in its data dir)"
    for sidecar in consul.sidecars.values():
        sidecar.wait_ready(timeout=60)
    assert consul.read_local(follower, "w/while-away") == "2"
