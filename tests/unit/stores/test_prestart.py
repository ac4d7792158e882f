"""What the stores' pre-start work shares: data moved aside, at most ``keep`` copies kept."""

from __future__ import annotations

from pathlib import Path

from agent.stores.prestart import move_aside


def member(tmp_path: Path, text: str) -> Path:
    (tmp_path / "member" / "wal").mkdir(parents=True)
    (tmp_path / "member" / "wal" / "0.wal").write_text(text)
    return tmp_path / "member"


def copies(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in tmp_path.glob("member.removed-*"))


def test_old_data_is_moved_aside(tmp_path: Path) -> None:
    target, deleted = move_aside(member(tmp_path, "old"))
    assert target.parent == tmp_path and target.name.startswith("member.removed-")
    assert (target / "wal" / "0.wal").read_text() == "old"
    assert not (tmp_path / "member").exists() and deleted == []


def test_only_the_newest_copies_are_kept(tmp_path: Path) -> None:
    """Scaled down and up again and again on a kept volume: the copies stay bounded."""
    (tmp_path / "member.removed-20261101T000000Z").mkdir()
    (tmp_path / "member.removed-20261102T000000Z").mkdir()
    (tmp_path / "member.removed-20261102T000000Z-2").mkdir()
    (tmp_path / "unrelated").mkdir()
    target, deleted = move_aside(member(tmp_path, "newest"), keep=2)
    assert sorted(p.name for p in deleted) == ["member.removed-20261101T000000Z",
                                               "member.removed-20261102T000000Z"]
    assert copies(tmp_path) == sorted(["member.removed-20261102T000000Z-2", target.name])
    assert (target / "wal" / "0.wal").read_text() == "newest"
    assert (tmp_path / "unrelated").is_dir()


def test_two_moves_within_one_second_keep_both(tmp_path: Path) -> None:
    first, _ = move_aside(member(tmp_path, "first"), keep=5)
    second, _ = move_aside(member(tmp_path, "second"), keep=5)
    assert first != second and len(copies(tmp_path)) == 2
    assert (second / "wal" / "0.wal").read_text() == "second"
    # Within one second too, the newest is the one kept.
    third, deleted = move_aside(member(tmp_path, "third"), keep=1)
    assert sorted(deleted) == sorted([first, second]) and copies(tmp_path) == [third.name]


def test_the_new_copy_and_foreign_names_are_never_deleted(tmp_path: Path) -> None:
    """A copy stamped later than now (a node whose clock ran ahead) does not push the new
    copy out; names this function does not make are not its to delete."""
    (tmp_path / "member.removed-29991231T235959Z").mkdir()
    (tmp_path / "member.removed-backup").mkdir()
    (tmp_path / "member.removed-20261101T000000Z.tar").write_text("user's")
    target, deleted = move_aside(member(tmp_path, "new"), keep=1)
    assert deleted == [tmp_path / "member.removed-29991231T235959Z"]
    assert (target / "wal" / "0.wal").read_text() == "new"
    assert copies(tmp_path) == sorted(["member.removed-20261101T000000Z.tar",
                                       "member.removed-backup", target.name])
