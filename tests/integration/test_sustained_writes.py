"""Readiness under a sustained writer on real etcd, rqlite and Consul: a follower that
keeps up never leaves the Service's endpoints (the examples probe every 2 s with
``failureThreshold: 1``, so a single 503 would take it out)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.registry import raft_stores
from player.stores.base import Harness
from tests.integration.conftest import harness_for, ready_cluster

pytestmark = pytest.mark.integration

SECONDS = 60.0
CLIENTS = 4  # writers at once, each as fast as the leader acknowledges
# The agent's defaults, as the examples run it (the other tests poll faster), but a
# strict catch-up bound: 5 entries, so an honest follower must be measured honestly.
DEFAULTS = {"AGENT_POLL_INTERVAL_SECONDS": "1", "AGENT_STALE_AFTER_SECONDS": "5",
            "AGENT_STORE_TIMEOUT_SECONDS": "2", "AGENT_MAX_LAG_ENTRIES": "5"}


class Flood:
    """``CLIENTS`` threads writing distinct keys through the leader as fast as it takes."""

    def __init__(self, cluster: Harness[Any], url: str) -> None:
        self.cluster = cluster
        self.url = url
        self.acknowledged = 0
        self.failed = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True)
                         for n in range(CLIENTS)]

    def _run(self, client: int) -> None:
        kv = self.cluster.kv_class(httpx.Client(timeout=5.0, trust_env=False,
                                                follow_redirects=True))
        n = 0
        while not self._stop.is_set():
            try:
                ok = kv.put(self.url, f"flood/{client}/{n:07d}", "x" * 100)
            except (httpx.HTTPError, ValueError):
                ok = False
            with self._lock:
                if ok:
                    self.acknowledged += 1
                else:
                    self.failed += 1
            n += 1

    def __enter__(self) -> Flood:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)


@pytest.mark.parametrize("store", raft_stores())
def test_followers_stay_ready_under_a_sustained_writer(store: str, tmp_path: Path) -> None:
    # Elections slower than the default test clusters': a leader overloaded by the flood
    # (etcd warns of heartbeats 1.2 s late here) must not lose its term mid-run.
    harness = harness_for(store, tmp_path, election_seconds=5.0, sidecar_env=DEFAULTS)
    with ready_cluster(harness) as cluster:
        leader = cluster.leader()
        followers = [o for o in sorted(cluster.sidecars) if o != leader]
        samples = 0
        unready: list[tuple[float, int, list[str]]] = []
        started = time.monotonic()
        with Flood(cluster, cluster.store_url(leader)) as flood:
            while (elapsed := time.monotonic() - started) < SECONDS:
                for ordinal in followers:
                    status, body = cluster.sidecars[ordinal].readyz()
                    samples += 1
                    if status != 200:
                        unready.append((round(elapsed, 1), ordinal,
                                        [c["reason"] for c in body["checks"] if not c["ok"]]))
                time.sleep(0.2)  # the sampling period (ten times the kubelet's)
        rate = flood.acknowledged / SECONDS
        lags = {o: cluster.sidecars[o].status()["view"] for o in followers}
        print(f"{store}: {flood.acknowledged} writes in {SECONDS:.0f} s ({rate:.0f}/s, "
              f"{flood.failed} failed) by {CLIENTS} clients; {samples} readiness samples "
              f"of {len(followers)} followers")
        assert flood.acknowledged > 0
        assert flood.failed == 0
        assert cluster.leader() == leader, "an election during the run: not a steady load"
        assert unready == [], f"followers left endpoints under load: {unready[:5]}"
        assert all(view["authority"] for view in lags.values())
