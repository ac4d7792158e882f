"""A node's position: grastate.dat, --wsrep-recover's log, the copy init keeps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.stores.galera.position import (
    GraState,
    Position,
    PositionUnreadable,
    SavedView,
    best_known,
    empty_gvwstate,
    parse_grastate,
    parse_gvwstate,
    parse_recovered,
    read_grastate,
    read_gvwstate,
    read_saved,
    save,
    write_atomically,
)

X = "e955b900-ee63-11f1-bd7e-467014377b0a"
Y = "11111111-ee63-11f1-bd7e-467014377b0a"
# As mariadbd 10.11 writes it (no trailing newline after the last line).
CRASHED = f"# GALERA saved state\nversion: 2.1\nuuid:    {X}\nseqno:   -1\nsafe_to_bootstrap: 0"


def test_grastate_as_galera_writes_it() -> None:
    state = parse_grastate(CRASHED)
    assert state == GraState(X, -1, False) and not state.position.known
    clean = parse_grastate(GraState(X, 42, True).text())
    assert clean.position == Position(X, 42) and clean.safe_to_bootstrap


@pytest.mark.parametrize(("text", "named"), [
    ("version: 2.1\nseqno: 1\n", "no uuid"),
    (f"uuid: {X}\nseqno: x\n", "not an integer"),
    ("uuid: nope\nseqno: 1\n", "not a UUID"),
    (f"uuid: {X}\nseqno: 1\nsafe_to_bootstrap: 2\n", "not 0 or 1"),
])
def test_a_broken_grastate_is_named(text: str, named: str) -> None:
    with pytest.raises(PositionUnreadable, match=named):
        parse_grastate(text)


def test_the_recovered_position_is_read_from_mariadbd_s_log() -> None:
    log = ("2026-12-02 15:20:48 0 [Note] InnoDB: Starting crash recovery\n"
           f"2026-12-02 15:20:48 0 [Note] WSREP: Recovered position: {X}:7\n")
    assert parse_recovered(log) == Position(X, 7)
    assert parse_recovered("[ERROR] Aborting\n") is None


def test_the_data_s_own_position_wins_over_a_kept_copy() -> None:
    """grastate.dat after a clean stop, else InnoDB's recovery, else the copy init kept
    before a failed start; never a figure the data does not vouch for."""
    clean = GraState(X, 9, True)
    crashed = GraState(X, -1, False)
    assert best_known(clean, None, Position(X, 5)) == Position(X, 9)
    assert best_known(crashed, Position(X, 7), Position(X, 8)) == Position(X, 7)
    assert best_known(crashed, None, Position(X, 8)) == Position(X, 8)
    assert best_known(crashed, None, None) == Position(X, -1)
    assert best_known(None, None, None) is None
    assert best_known(GraState("00000000-0000-0000-0000-000000000000", -1, False),
                      None, None) is None
    assert best_known(crashed, Position(Y, 3), None) == Position(Y, 3)
    # The data says it has no history (a node left mid-copy): no kept copy outweighs it.
    empty = "00000000-0000-0000-0000-000000000000"
    assert best_known(GraState(empty, -1, False), Position(empty, 0), Position(X, 206)) is None
    assert best_known(crashed, Position(Y, -1), Position(X, 8)) == Position(Y, -1)
    assert best_known(None, None, Position(X, 8)) == Position(X, 8)


def test_files_on_the_volume(tmp_path: Path) -> None:
    assert read_grastate(tmp_path) is None and read_saved(tmp_path) is None
    (tmp_path / "grastate.dat").write_text(CRASHED)
    assert read_grastate(tmp_path) == GraState(X, -1, False)
    save(tmp_path, Position(X, 7))
    assert read_saved(tmp_path) == Position(X, 7)
    assert json.loads((tmp_path / "sts-agent-position.json").read_text())["seqno"] == 7
    (tmp_path / "sts-agent-position.json").write_text("{}")
    with pytest.raises(PositionUnreadable):
        read_saved(tmp_path)


def test_a_rewrite_keeps_the_file_s_mode_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "grastate.dat"
    target.write_text(CRASHED)
    target.chmod(0o640)
    write_atomically(target, GraState(X, 7, True).text())
    assert parse_grastate(target.read_text()).safe_to_bootstrap
    assert target.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["grastate.dat"]


def test_an_empty_gvwstate_is_found(tmp_path: Path) -> None:
    assert not empty_gvwstate(tmp_path)
    (tmp_path / "gvwstate.dat").write_text("")
    assert empty_gvwstate(tmp_path)
    (tmp_path / "gvwstate.dat").write_text("my_uuid: x\n#vwbeg\n")
    assert not empty_gvwstate(tmp_path)


A, B, C = ("0b0d6c8e-d3f1-11f1-8e2e-0b5b0b0b0b0a", "1c1d6c8e-d3f1-11f1-9f3f-1c6c1c1c1c1b",
           "2d2d6c8e-d3f1-11f1-a040-2d7d2d2d2d2c")
# As galera 26.4 writes it at each Primary view (ViewState::write_stream).
GVWSTATE = f"""my_uuid: {B}
#vwbeg
view_id: 3 {A} 5
bootstrap: 0
member: {A} 0
member: {B} 0
member: {C} 0
#vwend
"""


def test_the_saved_view_as_galera_writes_it(tmp_path: Path) -> None:
    assert read_gvwstate(tmp_path) is None
    (tmp_path / "gvwstate.dat").write_text(GVWSTATE)
    assert read_gvwstate(tmp_path) == SavedView(B, f"{A}:5", (A, B, C))


@pytest.mark.parametrize("text", [
    GVWSTATE.replace("view_id: 3", "view_id: 2"),  # not a Primary view
    GVWSTATE.replace(f"my_uuid: {B}\n", ""),  # no id of its own
    GVWSTATE.replace(f"member: {B} 0\n", ""),  # itself not a member
    GVWSTATE.replace(f"view_id: 3 {A} 5\n", ""),  # no view
    "garbage\n",
])
def test_a_view_that_cannot_be_restored_is_none(text: str) -> None:
    assert parse_gvwstate(text) is None
