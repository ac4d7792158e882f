"""A real node's stop removes its own /var/log/containers links only, and a link another
kubelet removed meanwhile is no error."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from player import realnode
from player.realnode import RealNode


def test_only_this_nodes_links_go_and_one_gone_meanwhile_is_skipped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    links = tmp_path / "containers"
    links.mkdir()
    monkeypatch.setattr(realnode, "CONTAINER_LOG_LINKS", links)
    mine, other = tmp_path / "node-a" / "pods", tmp_path / "node-b" / "pods"
    for name, target in [("a_1.log", mine / "a" / "0.log"), ("gone.log", mine / "g" / "0.log"),
                         ("b_1.log", other / "b" / "0.log")]:
        (links / name).symlink_to(target)
    (links / "plain.log").write_text("not a link")
    real_readlink = os.readlink

    def racing(path: os.PathLike[str] | str) -> str:
        if Path(path).name == "gone.log":  # another kubelet removed it since the listing
            Path(path).unlink()
            raise FileNotFoundError(2, "No such file or directory", str(path))
        return real_readlink(path)

    monkeypatch.setattr(os, "readlink", racing)
    RealNode._remove_log_links(SimpleNamespace(pod_logs=mine))  # type: ignore[arg-type]
    assert sorted(p.name for p in links.iterdir()) == ["b_1.log", "plain.log"]
