"""Each etcd version played (3.4, 3.5, 3.6) still answers as the unit tests' captures say,
and writes its member id where the agent reads it from the WAL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.stores.etcd.wal import member_ids
from player.stores.etcd import VERSIONS, EtcdCluster
from player.stores.etcd_answers import READS, capture, differences, missing, path_for
from tests.integration.conftest import require_store

pytestmark = pytest.mark.integration

# Refusals whose words depend on timing: etcd derives a new member's id from its peer
# URLs and the time, so adding a peer URL again is refused for the id or for the URL.
VARYING = {"duplicate_peer_url": ("etcdserver: member ID already exist",
                                  "etcdserver: Peer URLs already exists")}


@pytest.mark.parametrize("version", sorted(VERSIONS))
def test_live_answers_as_captured(version: str, tmp_path: Path) -> None:
    """If this fails, etcd changed an answer: run ``python -m player.stores.etcd_answers
    <version>``, look at the diff, and make the backend read the new shape."""
    require_store("etcd", f"v{version}")
    captured = json.loads(path_for(version).read_text())["answers"]
    live = capture(version, tmp_path)
    for name, answer in live.items():
        assert answer["status"] == captured[name]["status"], name
        assert differences(answer["body"], captured[name]["body"]) == [], name
        if answer["status"] != 200:  # a refusal: the backend reads its words
            said = answer["body"]["message"]
            assert said == captured[name]["body"]["message"] or said in VARYING.get(name, ()), (
                name, said)
        for path in READS.get(name, ()):
            assert missing(answer["body"], path) == [], f"{name}: {path}"


@pytest.mark.parametrize("version", sorted(VERSIONS))
def test_member_id_read_from_the_wal(version: str, tmp_path: Path) -> None:
    """The WAL's metadata record names the member and the cluster, in every version."""
    require_store("etcd", f"v{version}")
    cluster = EtcdCluster(tmp_path, version=version)
    try:
        cluster.start(3)
        listed = cluster.api(None, "/v3/cluster/member/list", {})
        ids = {m["name"]: str(m["ID"]) for m in listed["members"]}
        cluster_id = str(listed["header"]["cluster_id"])
    finally:
        cluster.stop_all()
    for ordinal, node in sorted(cluster.nodes.items()):
        assert member_ids(node.data_dir) == (ids[f"etcd-{ordinal}"], cluster_id)
