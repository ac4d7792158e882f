"""k8s/etcd upgraded from etcd 3.5 to 3.6 by a rolling update, with a client writing: no
member removed, no acknowledged write lost, and while versions are mixed every pod the
kubelet sees Ready is a voter that knows its leader (or lost it no longer ago than the
readiness probe can tell)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from player.controlplane import ControlPlane
from player.statefulset import StatefulSetPlayer
from player.stores.etcd import image_tag
from player.wait import wait_until
from player.writer import writer_for
from tests.e2e.conftest import ROOT, etcd_images, played
from tests.e2e.test_statefulset import assert_linearizable

pytestmark = pytest.mark.e2e

# How long a pod can stay Ready after its etcd lost its leader, by the example's own
# settings: the agent notices at its next poll (0.5 s), the kubelet at its next
# readiness probe (periodSeconds 1, failureThreshold 1) within the probe's timeout (1 s,
# the default), and this watch samples every 0.2 s plus one more second for the status
# to reach it on a loaded two-core host. A leader election (the old leader's pod is
# deleted in every rolling update) may be seen in that window; longer is dishonest.
READY_LAG_SECONDS = 0.5 + 1.0 + 1.0 + 0.2 + 1.0


class ReadyWatch:
    """Samples, in a thread, what each pod the kubelet reports Ready says of itself
    through its etcd: its version, whether it is a voter, whether it knows a leader."""

    def __init__(self, cluster: StatefulSetPlayer) -> None:
        self.cluster = cluster
        self.http = httpx.Client(timeout=2.0, trust_env=False)
        self.dishonest: list[str] = []  # Ready while not a voter with a leader
        self._leaderless_since: dict[str, float] = {}  # Ready pods whose etcd has none
        self.samples = 0
        self.mixed = 0  # samples with two versions Ready at once
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ready-watch", daemon=True)

    def _ask(self, ip: str, path: str) -> Any:
        response = self.http.post(f"http://{ip}:2379{path}", json={})
        response.raise_for_status()
        return response.json()

    def _sample(self) -> None:
        versions = set()
        for pod in list(self.cluster.pods.values()):
            if not pod.ready or pod.terminating:
                self._leaderless_since.pop(pod.name, None)
                continue
            try:
                status = self._ask(pod.ip, "/v3/maintenance/status")
                members = self._ask(pod.ip, "/v3/cluster/member/list")["members"]
            except (httpx.HTTPError, KeyError, ValueError):
                continue  # the pod is going away between the look and the ask
            me = status["header"]["member_id"]
            voter = any(m["ID"] == me and not m.get("isLearner") for m in members)
            if not voter:  # no membership change in a rolling update: never excused
                self.dishonest.append(f"{pod.name} Ready: not a voter")
            if status.get("leader", "0") != "0":
                self._leaderless_since.pop(pod.name, None)
            else:
                since = self._leaderless_since.setdefault(pod.name, time.monotonic())
                if time.monotonic() - since > READY_LAG_SECONDS:
                    self.dishonest.append(f"{pod.name} Ready with no leader for more than "
                                          f"{READY_LAG_SECONDS} s")
                    self._leaderless_since[pod.name] = time.monotonic()  # once a window
            versions.add(status["version"].rsplit(".", 1)[0])
        self.samples += 1
        self.mixed += len(versions) > 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(0.2)

    def __enter__(self) -> ReadyWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self.http.close()


def cluster_version(cluster: StatefulSetPlayer) -> str:
    """The cluster version the members agreed on (``etcdcluster`` of ``/version``)."""
    with httpx.Client(timeout=2.0, trust_env=False) as http:
        answer = http.get(f"http://{cluster.pods[0].ip}:2379/version").json()
    return str(answer["etcdcluster"])


def test_rolling_update_from_35_to_36(tmp_path: Path,
                                      e2e_control_plane: ControlPlane) -> None:
    with played(ROOT / "k8s" / "etcd", "etcd@3.5", tmp_path, e2e_control_plane) as cluster:
        cluster.start(3)
        # A new cluster starts at 3.0.0; its leader raises it on its next version check
        # (every 4 s in etcd), once it has heard every member's version.
        wait_until(lambda: cluster_version(cluster) == "3.5.0",
                   what="the new cluster's version to move to 3.5 once the leader sees 3 members",
                   timeout=30)
        before = {m["name"]: m["id"] for m in cluster.members()}
        writer = writer_for(cluster).start()
        try:
            with ReadyWatch(cluster) as watch:
                cluster.images = etcd_images("3.6")
                cluster.apply()  # the new template: the controller rolls 2, 1, 0
                cluster.wait_rolled_out()
        finally:
            writer.stop()
        print(f"3.5 -> 3.6: {watch.samples} samples, {watch.mixed} with both versions "
              f"Ready; {len(writer.acknowledged)} writes acknowledged, longest wait "
              f"between two {writer.longest_gap:.1f} s")
        assert watch.dishonest == []
        assert watch.mixed > 0  # the check above ran while 3.5 and 3.6 served together
        assert {m["name"]: m["id"] for m in cluster.members()} == before
        assert writer.acknowledged
        assert writer.lost(f"http://{cluster.pods[0].ip}:2379") == []
        assert_linearizable(writer)
        assert "MemberRemoved" not in cluster.event_reasons()
        with httpx.Client(timeout=2.0, trust_env=False) as http:
            running = {http.post(f"http://{p.ip}:2379/v3/maintenance/status",
                                 json={}).json()["version"] for p in cluster.pods.values()}
        assert running == {image_tag("3.6").removeprefix("v")}
        wait_until(lambda: cluster_version(cluster) == "3.6.0",
                   what="the cluster version to move to 3.6 once every member runs 3.6",
                   timeout=30)
