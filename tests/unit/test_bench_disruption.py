"""The disruption benchmark's arithmetic: gaps between acknowledged writes, latency from
when a write was due, and leader changes and leaderless spells from the raft watch."""

from __future__ import annotations

from bench.openloop import Write, percentile, window
from bench.raftwatch import RaftWatch, Seen


def test_gap_spans_failures_and_the_window_edges() -> None:
    writes = [Write(0.0, 0.01, True), Write(1.0, 1.01, True), Write(1.1, 1.6, False),
              Write(1.2, 3.0, True), Write(3.1, 3.11, True)]
    seen = window(writes, 1.0, 3.05)
    assert seen.writes == 3 and seen.failed == 1
    # 1.01 .. 3.0 without an acknowledged write; the 1.6 failure does not break it.
    assert abs(seen.longest_gap - 1.99) < 1e-9
    # Latency counts from when a write was due, not when it was sent.
    assert abs(seen.p50 - 0.01) < 1e-9 and abs(seen.p99 - 1.8) < 1e-9


def test_gap_runs_to_the_first_ack_after_the_window() -> None:
    writes = [Write(0.0, 0.5, True), Write(0.6, 2.5, True)]
    assert window(writes, 1.0, 2.0).longest_gap == 1.5  # 1.0 .. 2.5: still waiting at 2.0


def test_no_ack_at_all_is_the_whole_window() -> None:
    assert window([Write(1.0, 1.5, False)], 1.0, 3.0).longest_gap == 2.0


def test_percentile_nearest_rank() -> None:
    assert percentile([], 0.99) == 0.0
    assert percentile([float(v) for v in range(1, 101)], 0.99) == 99.0
    assert percentile([5.0], 0.5) == 5.0


def test_elections_count_changes_terms_and_leaderless_spells() -> None:
    watch = RaftWatch("etcd", dict)
    watch.seen = [Seen(0.0, "etcd-0", 2), Seen(1.0, "etcd-0", 2), Seen(1.1, None, 3),
                  Seen(1.9, "etcd-1", 3), Seen(2.5, "etcd-1", 4), Seen(3.0, "etcd-2", 5)]
    inside = watch.elections(0.5, 2.6)
    assert inside.leader_changes == 1 and inside.term_increments == 2
    assert abs(inside.leaderless - 0.8) < 1e-9
    quiet = watch.elections(0.5, 1.05)
    assert quiet.leader_changes == 0 and quiet.term_increments == 0 and quiet.leaderless == 0
    assert watch.leader() == "etcd-2"
