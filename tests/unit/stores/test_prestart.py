"""What the stores' pre-start work shares: data moved aside, never deleted."""

from __future__ import annotations

from pathlib import Path

from agent.stores.prestart import move_aside


def test_old_data_is_moved_aside_never_deleted(tmp_path: Path) -> None:
    (tmp_path / "member" / "wal").mkdir(parents=True)
    (tmp_path / "member" / "wal" / "0.wal").write_text("old")
    target = move_aside(tmp_path / "member")
    assert target.parent == tmp_path and target.name.startswith("member.removed-")
    assert (target / "wal" / "0.wal").read_text() == "old"
    assert not (tmp_path / "member").exists()
