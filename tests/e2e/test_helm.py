"""The Helm chart on the real control plane and a real node, for etcd, rqlite, Consul,
Galera and exec (its default: MariaDB Galera by hooks): `helm install`, an upgrade that
changes the pod template, `helm uninstall` and an install again on the kept volumes, and a
scale-down by `helm upgrade`, with a client writing; `kubectl sts-agent status` on each."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.config.loading import values_name
from agent.registry import raft_stores
from player.controlplane import ControlPlane, kubernetes_binary
from player.helmrelease import HelmRelease
from player.manifests import helm_binary
from player.wait import wait_until
from player.writer import writer_for
from tests.conftest import required
from tests.e2e.conftest import FAST, VIEW_SETTLE_SECONDS, require_player, require_real_node
from tests.e2e.test_statefulset import (
    assert_linearizable,
    leader_url,
    member_ids,
    pods,
)
from tests.integration.conftest import require_store

pytestmark = pytest.mark.e2e

# The e2e tier's quicker polls, as the chart takes them.
SETTINGS = {values_name(env.removeprefix("AGENT_").lower()): value
            for env, value in FAST.items()}
# rqlite's passwords given, so that the client knows them across an install again.
AUTH = {"rqlite": {"rqlite.auth.adminPassword": "e2e-admin",
                   "rqlite.auth.agentPassword": "e2e-agent",
                   "rqlite.auth.clusterPassword": "e2e-cluster"},
        "galera": {"galera.auth.rootPassword": "e2e-root",
                   "galera.auth.statusPassword": "e2e-status"}}
# The Event a departure posts once its member is gone (Galera's: its clean stop begun;
# exec's: its stop hook done).
REMOVED = {"galera": "MemberLeaving", "exec": "MemberStopped"}
# The release each store is installed as (exec's defaults are k8s/exec-galera's).
RELEASE = {"exec": "exec-galera"}
_released = itertools.count(1)


def membership(release: HelmRelease) -> dict[str, str]:
    """Member name -> id. A Galera node is named by its address and gets a new id at every
    start of mariadbd: there each member is the pod whose address it has, by the pod's
    name."""
    if release.example.store in raft_stores():
        return member_ids(release)
    if release.example.store == "exec":
        # The hooks report one node each (its status: primary or not): the ready pods are
        # the members the agents can tell of.
        return {pod.name: pod.name for pod in release.pods.values() if pod.ready}
    addresses = [str(m["name"]) for m in release.members()]
    found = {pod.name: pod.name for pod in release.pods.values()
             if any(address.split(":")[0] == pod.ip for address in addresses)}
    assert len(found) == len(addresses), f"members {addresses} not all pods"
    return found


def wait_members(release: HelmRelease, expected: dict[str, str], when: str) -> None:
    """Wait until the members are ``expected`` (name -> id): the view a ready pod's sidecar
    reports may be a poll older than its own."""
    def same() -> bool:
        found = membership(release)
        assert found == expected, f"members {found}"
        return True

    wait_until(same, what=f"the same members under the same ids {when}",
               timeout=VIEW_SETTLE_SECONDS)


def plugin_status(release: HelmRelease) -> dict[str, Any]:
    """`kubectl sts-agent status <statefulset> -o json` as a user runs it: kubectl finds
    the plugin the package installs on PATH; it reads each sidecar's /status through
    the API server's pod proxy."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "KUBECONFIG": str(release.control_plane.kubeconfig())}
    result = subprocess.run(
        [kubernetes_binary("kubectl"), "sts-agent", "status", release.name,
         "-n", release.namespace, "-o", "json"],
        capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


@pytest.fixture(params=[*raft_stores(), "galera", "exec"])
def release(request: pytest.FixtureRequest, tmp_path: Path,
            e2e_control_plane: ControlPlane) -> Iterator[HelmRelease]:
    store = request.param
    require_player()
    require_real_node()
    require_store(store, "")
    required(helm_binary)
    values = {"agent.settings": SETTINGS, **AUTH.get(store, {})}
    with HelmRelease(store, tmp_path / "release", control_plane=e2e_control_plane,
                     namespace=f"helm-{store}-{next(_released)}", values=values,
                     release=RELEASE.get(store)) as played:
        yield played


def test_install_upgrade_uninstall_install_again_and_scale_down(release: HelmRelease) -> None:
    """One client writes and reads throughout (through whichever pods are ready; none
    while the release is uninstalled): no acknowledged write is lost, none of the
    reads is stale, across the rollout, the install again and the scale-down."""
    release.start(3)
    before = membership(release)
    raft = release.example.store in raft_stores()
    removed = REMOVED.get(release.example.store, "MemberRemoved")
    # Each sidecar answers from its own last poll: right after the pods turned Ready one
    # may not show another's promotion yet, so the table is asked until it settles.
    expected = [(f"{release.name}-{o}", "Running", True, True) for o in range(3)]

    def settled() -> list[dict[str, Any]] | None:
        rows: list[dict[str, Any]] = plugin_status(release)["pods"]
        found = [(r["pod"], r["phase"], r["ready"], r["member"]) for r in rows]
        roles = sorted(str(r["role"]) for r in rows)
        voters = all(r["voter"] for r in rows)
        if raft and (roles != ["follower", "follower", "leader"] or not voters):
            return None
        return rows if found == expected else None

    rows = wait_until(settled, what="kubectl sts-agent status: three ready members",
                      timeout=VIEW_SETTLE_SECONDS, interval=0.5)
    assert all(r["version"] for r in rows) or not raft, rows  # exec's hooks say none
    writer = writer_for(release).start()
    try:
        # A change of the pod template (what a new image or setting is): every pod rolled.
        old = set(release.revisions().values())
        release.upgrade(podAnnotations={"sts-agent.io/e2e-rollout": "1"})
        assert not old & set(release.revisions().values())
        wait_members(release, before, "after the upgrade rolled every pod")
        assert removed not in release.event_reasons()

        release.uninstall()
        assert release.claims() == [f"data-{release.name}-{ordinal}" for ordinal in range(3)]
        assert removed not in release.event_reasons()
        release.install()
        wait_members(release, before, "after the install again on the kept volumes")

        release.scale(2)
        kept = {name: id_ for name, id_ in before.items() if name != f"{release.name}-2"}
        wait_members(release, kept, "after helm upgrade --set replicaCount=2")
        assert sorted(membership(release)) == pods(release)
        assert release.event_reasons().count(removed) == 1
    finally:
        writer.stop()
    url = (leader_url(release) if release.example.store in raft_stores()
           else f"mysql://{release.pods[0].ip}:3306")  # Galera, and exec's Galera by hooks
    assert writer.lost(url) == []
    assert_linearizable(writer)
