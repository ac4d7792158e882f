"""Atomic writes: whole or not at all, mode and owner as asked, no temporary left behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.atomic import NEW_FILE_MODE, write_atomically


def test_a_new_file_and_its_replacement(tmp_path: Path) -> None:
    write_atomically(tmp_path, "a.json", b"one")
    assert (tmp_path / "a.json").read_bytes() == b"one"
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == NEW_FILE_MODE
    (tmp_path / "a.json").chmod(0o640)
    write_atomically(tmp_path, "a.json", b"two")
    assert (tmp_path / "a.json").read_bytes() == b"two"
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o640  # the old file's mode
    write_atomically(tmp_path, "a.json", b"three", mode=0o604)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o604
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_through_an_open_directory(tmp_path: Path) -> None:
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        write_atomically(fd, "b", b"x", mode=0o600)
    finally:
        os.close(fd)
    assert (tmp_path / "b").read_bytes() == b"x"


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_the_old_owner_is_kept(tmp_path: Path) -> None:
    (tmp_path / "grastate.dat").write_text("old")
    os.chown(tmp_path / "grastate.dat", 999, 999)
    write_atomically(tmp_path, "grastate.dat", b"new", keep_owner=True)
    info = (tmp_path / "grastate.dat").stat()
    assert (info.st_uid, info.st_gid) == (999, 999)


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    (tmp_path / "c").write_bytes(b"old")
    with pytest.raises(TypeError):
        write_atomically(tmp_path, "c", "not bytes")  # type: ignore[arg-type]
    assert (tmp_path / "c").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]
