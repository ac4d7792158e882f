"""The node image store (player.nodeimages): which images it holds, and a node's copy
sharing only what is never written in place."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from player import nodeimages


def archive(path: Path, name: str) -> None:
    """An OCI archive with only the index `make images` writes."""
    index = json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:00",
        "size": 1, "annotations": {"org.opencontainers.image.ref.name": name}}]}).encode()
    with tarfile.open(path, "w") as tar:
        entry = tarfile.TarInfo("index.json")
        entry.size = len(index)
        tar.addfile(entry, io.BytesIO(index))


def test_the_store_holds_what_the_registry_serves_by_digest(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archives, storage = tmp_path / "images", tmp_path / "registry"
    archives.mkdir()
    monkeypatch.setattr(nodeimages, "ARCHIVES", archives)
    monkeypatch.setattr(nodeimages, "STORAGE", storage)
    archive(archives / "a.oci.tar", "gcr.io/etcd-development/etcd:v3.6.16")
    archive(archives / "b.oci.tar", "docker.io/library/sts-agent:0.1.0")
    link = (storage / "docker/registry/v2/repositories/etcd-development/etcd/_manifests/tags"
            / "v3.6.16/current/link")
    link.parent.mkdir(parents=True)
    link.write_text("sha256:abc")
    # sts-agent is built but not published: not in the store (a node could not resolve it).
    assert nodeimages.served() == [("gcr.io/etcd-development/etcd:v3.6.16", "sha256:abc")]


def test_a_node_links_blobs_and_snapshots_and_copies_the_databases(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made = tmp_path / "store"
    files = {"io.containerd.content.v1.content/blobs/sha256/ab": "layer",
             "io.containerd.snapshotter.v1.overlayfs/snapshots/1/fs/etc/hostname": "x",
             "io.containerd.snapshotter.v1.overlayfs/metadata.db": "snapshots",
             "io.containerd.metadata.v1.bolt/meta.db": "images"}
    for name, text in files.items():
        (made / name).parent.mkdir(parents=True, exist_ok=True)
        (made / name).write_text(text)
    monkeypatch.setattr(nodeimages, "store", lambda: made)
    root = tmp_path / "node" / "root"
    assert nodeimages.seed(root)
    for name, text in files.items():
        assert (root / name).read_text() == text
        shared = (root / name).stat().st_ino == (made / name).stat().st_ino
        assert shared == (not name.endswith(".db")), name
    (root / "io.containerd.metadata.v1.bolt/meta.db").write_text("the node's own")
    assert (made / "io.containerd.metadata.v1.bolt/meta.db").read_text() == "images"


def test_no_store_no_seed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nodeimages, "store", lambda: None)
    assert not nodeimages.seed(tmp_path / "root")
    assert not (tmp_path / "root").exists()
