"""The disruption benchmark's arithmetic: gaps between acknowledged writes, latency from
when a write was due, leader changes and leaderless spells from the raft watch, and the
table's median and worst of several runs."""

from __future__ import annotations

from typing import Any, cast

import pytest

from bench.disruption import (
    Row,
    agent_env_patches,
    failures,
    name_every_member,
    operations,
    print_rows,
)
from bench.openloop import Write, percentile, window
from bench.raftwatch import RaftWatch, Seen
from player.statefulset import StatefulSetPlayer


def test_gap_spans_failures_and_the_window_edges() -> None:
    writes = [Write(0.0, 0.01, True), Write(1.0, 1.01, True), Write(1.1, 1.6, False),
              Write(1.2, 3.0, True), Write(3.1, 3.11, True)]
    seen = window(writes, 1.0, 3.05)
    assert seen.writes == 3 and seen.failed == 1
    # 1.01 .. 3.0 without an acknowledged write; the 1.6 failure does not break it.
    assert abs(seen.longest_gap - 1.99) < 1e-9 and seen.gap_from == 1.01
    # Latency counts from when a write was due, not when it was sent.
    assert abs(seen.p50 - 0.01) < 1e-9 and abs(seen.p99 - 1.8) < 1e-9


def test_gap_runs_to_the_first_ack_after_the_window() -> None:
    writes = [Write(0.0, 0.5, True), Write(0.6, 2.5, True)]
    seen = window(writes, 1.0, 2.0)
    assert (seen.longest_gap, seen.gap_from) == (1.5, 1.0)  # 1.0 .. 2.5: waiting at 2.0


def test_no_ack_at_all_is_the_whole_window() -> None:
    seen = window([Write(1.0, 1.5, False)], 1.0, 3.0)
    assert (seen.longest_gap, seen.gap_from) == (2.0, 1.0)


def test_failed_writes_are_counted_by_node_and_answer() -> None:
    writes = [Write(1.0, 1.1, False, "http://10.0.0.2:4001: refused"),
              Write(1.1, 1.2, True),
              Write(1.2, 3.2, False, "http://10.0.0.2:4001: ReadTimeout"),
              Write(1.3, 1.4, False, "http://10.0.0.2:4001: refused"),
              Write(1.4, 1.4, False, "no ready node in the list"),
              Write(9.0, 9.1, False, "http://10.0.0.3:4001: refused")]  # after the window
    seen = window(writes, 1.0, 3.0)
    assert seen.reasons == (("http://10.0.0.2:4001: refused", 2),
                            ("http://10.0.0.2:4001: ReadTimeout", 1),
                            ("no ready node in the list", 1))
    assert failures(seen.reasons, {"http://10.0.0.2:4001": "rqlite-1"}) == (
        "2 rqlite-1: refused; 1 rqlite-1: ReadTimeout; 1 no ready node in the list")
    assert window([Write(1.0, 1.1, True)], 1.0, 3.0).reasons == ()


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


def row(run: int, gap: float, *, store: str = "rqlite", variant: str = "agent",
        ready: float = 10.0, failed: int = 0, error: str = "",
        operation: str = "scale 3→5") -> Row:
    return Row(store, variant, operation, run, ready, 100, failed, gap, 5.0, 50.0,
               0, 0, 0.0, error)


def test_each_store_s_operations_are_listed_in_the_order_they_ran(
        capsys: pytest.CaptureFixture[str]) -> None:
    """Galera measured first (its "delete a pod", then the scale-down) does not put the
    scale-down before the deletions in the next store's rows."""
    ran = [("galera", "scale 3→5"), ("galera", "delete a pod"), ("galera", "scale 5→3"),
           ("etcd", "scale 3→5"), ("etcd", "delete a follower's pod"),
           ("etcd", "scale 5→3")]
    print_rows([row(1, 0.1, store=store, operation=operation) for store, operation in ran])
    listed = [tuple(c.strip() for c in ln.strip("|").split("|")[:2])
              for ln in capsys.readouterr().out.splitlines()[2:]]
    assert listed == sorted(ran, key=lambda r: r[0] != "etcd")  # etcd's rows first


def test_the_table_gives_median_and_worst_and_judges_the_worst(
        capsys: pytest.CaptureFixture[str]) -> None:
    print_rows([row(1, 0.1, ready=9.0), row(2, 0.2, ready=11.0), row(3, 0.7, ready=30.0,
                                                                      failed=2)])
    [line] = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("| rqlite")]
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[3:6] == ["3", "0.20 / 0.70", "2 / 300"]
    assert cells[-2:] == ["11.0 / 30.0", "not met (2 of 3 runs)"]


def test_galera_has_no_leader_columns_and_a_run_that_never_ended_is_named(
        capsys: pytest.CaptureFixture[str]) -> None:
    print_rows([row(1, 0.1, store="galera"), row(2, 0.1, store="galera", error="timeout")])
    [line] = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("| galera")]
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[7:10] == ["—", "—", "—"]
    assert cells[10] == "not all Ready (run 2: timeout)"
    assert cells[11] == "not met (1 of 2 runs)"


def test_agent_env_is_added_to_the_examples_sidecar() -> None:
    pod = {"containers": [{"name": "rqlite"}, {"name": "agent", "env": []}],
           "initContainers": [{"name": "init"}]}
    patches = agent_env_patches(pod, ["AGENT_POLL_INTERVAL_SECONDS=3", "AGENT_X=a=b"])
    assert patches == [
        {"op": "add", "path": "/spec/template/spec/containers/1/env/-",
         "value": {"name": "AGENT_POLL_INTERVAL_SECONDS", "value": "3"}},
        {"op": "add", "path": "/spec/template/spec/containers/1/env/-",
         "value": {"name": "AGENT_X", "value": "a=b"}}]
    # A native sidecar: the agent is an init container.
    native = {"containers": [{"name": "rqlite"}],
              "initContainers": [{"name": "init"}, {"name": "agent"}]}
    assert agent_env_patches(native, ["AGENT_X=1"])[0]["path"] == (
        "/spec/template/spec/initContainers/1/env/-")


def test_a_static_cluster_names_every_member_a_scale_up_starts() -> None:
    container = {"name": "etcd", "args": [
        "--name=$(POD_NAME)",
        "--initial-cluster=etcd-0=http://etcd-0.etcd:2380,etcd-1=http://etcd-1.etcd:2380,"
        "etcd-2=http://etcd-2.etcd:2380,etcd-3=http://etcd-3.etcd:2380,"
        "etcd-4=http://etcd-4.etcd:2380"]}
    patches: list[dict[str, Any]] = [{"op": "replace", "path": "/x", "value": [container]}]
    before = list(container["args"])
    assert name_every_member(patches, 5)  # five named already: as it was
    assert container["args"] == before
    assert name_every_member(patches, 9)
    named = container["args"][1].removeprefix("--initial-cluster=").split(",")
    assert named == [f"etcd-{o}=http://etcd-{o}.etcd:2380" for o in range(9)]
    assert not name_every_member([{"op": "remove", "path": "/y"}], 9)  # rqlite's: not static
    odd = {"args": ["--initial-cluster=etcd-1=http://etcd-1.etcd:2380"]}
    with pytest.raises(ValueError, match="not ordinal 0's"):
        name_every_member([{"op": "replace", "path": "/x", "value": [odd]}], 9)


def test_the_scale_operations_are_named_for_the_cluster_s_size() -> None:
    player = cast(StatefulSetPlayer, object())  # the steps only name it until they run
    assert list(operations(player, lambda: 0, 7)) == [
        "scale 7→9", "rolling restart", "delete a follower's pod", "delete the leader's pod",
        "scale 9→7"]
    assert list(operations(player, None, 7)) == [  # Galera: no leader
        "scale 7→9", "rolling restart", "delete a pod", "scale 9→7"]
    assert list(operations(player, None))[::3] == ["scale 3→5", "scale 5→3"]
