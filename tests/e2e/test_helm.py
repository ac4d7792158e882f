"""The Helm chart on the real control plane and a real node, for etcd, rqlite and Consul:
`helm install`, an upgrade that changes the pod template, `helm uninstall` and an install
again on the kept volumes, and a scale-down by `helm upgrade`, with a client writing."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config.loading import values_name
from agent.registry import raft_stores
from player.controlplane import ControlPlane
from player.helmrelease import HelmRelease
from player.manifests import helm_binary
from player.peers import MissingBinary
from player.writer import writer_for
from tests.conftest import missing
from tests.e2e.conftest import FAST, require_player, require_real_node
from tests.e2e.test_statefulset import (
    assert_linearizable,
    leader_url,
    member_ids,
    names,
    pods,
    wait_same_members,
)
from tests.integration.conftest import require_store

pytestmark = pytest.mark.e2e

# The e2e tier's quicker polls, as the chart takes them.
SETTINGS = {values_name(env.removeprefix("AGENT_").lower()): value
            for env, value in FAST.items()}
# rqlite's passwords given, so that the client knows them across an install again.
RQLITE_AUTH = {"rqlite.auth.adminPassword": "e2e-admin", "rqlite.auth.agentPassword": "e2e-agent",
               "rqlite.auth.clusterPassword": "e2e-cluster"}
_released = itertools.count(1)


@pytest.fixture(params=raft_stores())
def release(request: pytest.FixtureRequest, tmp_path: Path,
            e2e_control_plane: ControlPlane) -> Iterator[HelmRelease]:
    store = request.param
    require_player()
    require_real_node()
    require_store(store, "")
    try:
        helm_binary()
    except MissingBinary as exc:
        missing(str(exc))
    values = {"agent.settings": SETTINGS, **(RQLITE_AUTH if store == "rqlite" else {})}
    with HelmRelease(store, tmp_path / "release", control_plane=e2e_control_plane,
                     namespace=f"helm-{store}-{next(_released)}", values=values) as played:
        yield played


def test_install_upgrade_uninstall_install_again_and_scale_down(release: HelmRelease) -> None:
    """One client writes and reads throughout (through whichever pods are ready; none
    while the release is uninstalled): no acknowledged write is lost, none of the
    reads is stale, across the rollout, the install again and the scale-down."""
    release.start(3)
    before = member_ids(release)
    writer = writer_for(release).start()
    try:
        # A change of the pod template (what a new image or setting is): every pod rolled.
        old = set(release.revisions().values())
        release.upgrade(podAnnotations={"sts-agent.io/e2e-rollout": "1"})
        assert not old & set(release.revisions().values())
        wait_same_members(release, before, "after the upgrade rolled every pod")
        assert "MemberRemoved" not in release.event_reasons()

        release.uninstall()
        assert release.claims() == [f"data-{release.name}-{ordinal}" for ordinal in range(3)]
        assert "MemberRemoved" not in release.event_reasons()
        release.install()
        wait_same_members(release, before, "after the install again on the kept volumes")

        release.scale(2)
        kept = {name: id_ for name, id_ in before.items() if name != f"{release.name}-2"}
        wait_same_members(release, kept, "after helm upgrade --set replicaCount=2")
        assert names(release) == pods(release)
        assert release.event_reasons().count("MemberRemoved") == 1
    finally:
        writer.stop()
    assert writer.lost(leader_url(release)) == []
    assert_linearizable(writer)
