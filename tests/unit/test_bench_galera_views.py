"""bench/galera_views.py: the phases of a Galera view change read from a member's log."""

from __future__ import annotations

import pytest

from bench.galera_views import ViewChange, changes, slowest


def line(stamp: str, text: str, *, body: bool = False) -> str:
    """One line of a member's log as the kubelet writes it (CRI format); a multi-line
    message's body starts with a tab."""
    message = f"\t{text}" if body else f"2026-12-07 {stamp[:8]} 0 [Note] WSREP: {text}"
    return f"2026-12-07T{stamp}Z stderr F {message}"


def evs(state: str, view: int, change: str) -> str:
    """An EVS state change as a member logs it with evs.info_log_mask=0x3."""
    return f"evs::proto(6bcf, {state}, view_id(REG,6bcf,{view})):  state change: {change}"


# A join that needed two agreement rounds (a second joiner arrived), one member's log.
LOG = "\n".join([
    line("19:07:47.080808477", evs("OPERATIONAL", 3, "OPERATIONAL -> GATHER")),
    line("19:07:47.516551114", evs("GATHER", 3, "GATHER -> INSTALL")),
    line("19:07:47.720310268", evs("INSTALL", 3, "INSTALL -> OPERATIONAL")),
    line("19:07:47.720438738", "6bcfc896-be0e,0", body=True),
    line("19:07:47.827874903", evs("OPERATIONAL", 4, "OPERATIONAL -> GATHER")),
    line("19:07:48.032140785", evs("GATHER", 4, "GATHER -> INSTALL")),
    line("19:07:48.230922506", evs("INSTALL", 4, "INSTALL -> OPERATIONAL")),
    line("19:07:49.252056928", "view(view_id(PRIM,6bcfc896-be0e,5) memb {"),
    line("19:07:49.252099687", "view(view_id(PRIM,ffff,9) memb {", body=True),
    line("19:07:49.632804807", "Quorum results:"),
    line("19:07:50.495573011", "Shifting SYNCED -> DONOR/DESYNCED (TO: 378)")])


def test_a_view_change_is_timed_phase_by_phase_and_repeated_rounds_add_up() -> None:
    [change] = changes(LOG.splitlines())
    assert change.view == "6bcfc896-be0e,5"
    assert change.began.isoformat() == "2026-12-07T19:07:47.080808+00:00"
    # agree: 47.081 → 47.517, then 47.720 → 48.032 (the second round, from the REG view)
    assert change.phases["agree"] == pytest.approx(0.435743 + 0.311830, abs=1e-5)
    assert change.phases["install"] == pytest.approx(0.203759 + 0.198782, abs=1e-5)
    assert change.phases["primary"] == pytest.approx(1.021134, abs=1e-5)
    assert change.phases["states"] == pytest.approx(0.380748, abs=1e-5)
    assert change.total == pytest.approx(49.632804 - 47.080808, abs=1e-5)


def test_an_unfinished_change_and_lines_outside_one_are_not_counted() -> None:
    assert changes(LOG.splitlines()[:8]) == []  # no quorum yet
    assert changes(LOG.splitlines()[-2:]) == []  # a quorum line with no change begun


def test_a_change_that_ends_in_no_primary_view_is_dropped_not_merged_with_the_next() -> None:
    partition = [line("19:07:40.000000000", evs("OPERATIONAL", 2, "OPERATIONAL -> GATHER")),
                 line("19:07:40.200000000", evs("GATHER", 2, "GATHER -> INSTALL")),
                 line("19:07:45.000000000", "view(view_id(NON_PRIM,6bcf,3) memb {")]
    [change] = changes(partition + LOG.splitlines())
    assert change.began.isoformat() == "2026-12-07T19:07:47.080808+00:00"


def test_lines_without_the_kubelets_time_are_skipped_and_a_change_needs_its_view() -> None:
    plain = "2026-12-07 19:07:47 0 [Note] WSREP: Quorum results:"  # mariadbd's own stamp
    assert changes([*LOG.splitlines()[:9], plain, "", LOG.splitlines()[9]])[0].total == (
        pytest.approx(49.632804 - 47.080808, abs=1e-5))
    without_view = [text for text in LOG.splitlines() if "PRIM," not in text]
    assert changes(without_view) == []


def test_each_view_is_kept_once_as_its_slowest_member_saw_it() -> None:
    [fast] = changes(LOG.splitlines()[4:])  # a member that began at the second round
    [slow] = changes(LOG.splitlines())
    other = ViewChange(slow.began, "aaaa,6", {"agree": 0.1, "install": 0.0,
                                              "primary": 0.1, "states": 0.1})
    assert slowest([fast, other, slow]) == [slow, other]
