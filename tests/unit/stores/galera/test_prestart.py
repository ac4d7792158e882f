"""Galera's init: the position recovered and kept before any start (a fake mariadbd)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import httpx
import pytest

from agent.config.settings import Settings
from agent.discovery import ServiceNames
from agent.errors import BackendError
from agent.identity import PodIdentity
from agent.stores.galera.options import GaleraOptions
from agent.stores.galera.position import GraState, Position, SavedView
from agent.stores.galera.prestart import GaleraPrestart, donors
from agent.stores.galera.vote import Ballot
from player.stores.galera import render_config

X = "e955b900-ee63-11f1-bd7e-467014377b0a"
CRASHED = GraState(X, -1, False).text()


def fake_mariadbd(tmp_path: Path, *, log_line: str, exit_code: int = 0) -> str:
    """A stand-in for `mariadbd --wsrep-recover`: writes ``log_line`` to --log-error."""
    script = tmp_path / "mariadbd"
    script.write_text(f"""#!/bin/sh
for arg in "$@"; do case "$arg" in --log-error=*) log="${{arg#--log-error=}}" ;; esac; done
echo "$@" > {tmp_path}/argv
echo '{log_line}' >> "$log"
exit {exit_code}
""")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def prestart(tmp_path: Path, command: str) -> GaleraPrestart:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    settings = Settings(backend="galera", data_dir=data, listen="127.0.0.1:9090"
                        ).with_options(GaleraOptions(galera_recover_command=command))
    names = ServiceNames(statefulset="galera", service="galera", namespace="db",
                         domain="cluster.local")
    return GaleraPrestart(settings, names, PodIdentity("galera", 1), httpx.AsyncClient())


async def test_a_crashed_node_s_position_comes_from_innodb_and_is_kept(tmp_path: Path) -> None:
    command = fake_mariadbd(tmp_path, log_line=f"[Note] WSREP: Recovered position: {X}:41")
    work = prestart(tmp_path, command)
    (tmp_path / "data" / "grastate.dat").write_text(CRASHED)
    (tmp_path / "data" / "ibdata1").write_text("")
    (tmp_path / "data" / "gvwstate.dat").write_text("")
    position, safe = await work.recover()
    assert position == Position(X, 41) and not safe
    kept = json.loads((tmp_path / "data" / "sts-agent-position.json").read_text())
    assert kept == {"uuid": X, "seqno": 41}
    assert not (tmp_path / "data" / "gvwstate.dat").exists()  # empty: dropped
    argv = (tmp_path / "argv").read_text()
    for flag in ("--wsrep-recover", "--skip-networking", "--wsrep-on=ON",
                 f"--socket={tmp_path / 'data' / 'sts-agent-recover.sock'}"):
        assert flag in argv


async def test_a_clean_stop_needs_no_recovery(tmp_path: Path) -> None:
    work = prestart(tmp_path, "/nonexistent/mariadbd")
    (tmp_path / "data" / "grastate.dat").write_text(GraState(X, 9, True).text())
    (tmp_path / "data" / "ibdata1").write_text("")
    assert await work.recover() == (Position(X, 9), True)


async def test_a_failed_recovery_fails_init_instead_of_voting_unknown(tmp_path: Path) -> None:
    """A recovery that did not run (another server's socket, say) is no "unknown
    position": publishing one would make every peer refuse."""
    command = fake_mariadbd(tmp_path, log_line="[ERROR] Bind on unix socket: Address "
                            "already in use", exit_code=1)
    work = prestart(tmp_path, command)
    (tmp_path / "data" / "grastate.dat").write_text(CRASHED)
    (tmp_path / "data" / "ibdata1").write_text("")
    with pytest.raises(BackendError, match=r"exited 1: .*Address already in use"):
        await work.recover()
    assert work.ballot is None


async def test_a_new_volume_has_no_history(tmp_path: Path) -> None:
    work = prestart(tmp_path, "/nonexistent/mariadbd")
    assert await work.recover() == (None, False)
    assert work.init_document() == {"has_state": False, "ballot": None}


@pytest.mark.parametrize(("policy", "problem"), [("OrderedReady", True), ("Parallel", False)])
async def test_parallel_pods_are_required(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          policy: str, problem: bool) -> None:
    """Under OrderedReady pod 1 is never created while pod 0 waits for its ballot: init
    says so and exits 2 (ConfigError)."""
    from agent.errors import ConfigError
    from agent.kube import Kube

    async def pod_management(self: Kube, name: str) -> tuple[int, int, str]:
        assert name == "galera"
        return 3, 1, policy

    monkeypatch.setattr(Kube, "pod_management", pod_management)
    work = prestart(tmp_path, "/nonexistent/mariadbd")
    if problem:
        with pytest.raises(ConfigError, match="podManagementPolicy OrderedReady") as caught:
            await work.kept_ordinals()
        assert caught.value.exit_code == 2
    else:
        assert await work.kept_ordinals() == range(1, 4)


def synced(uptime: str) -> dict[str, str]:
    return {"wsrep_cluster_status": "Primary", "wsrep_local_state_comment": "Synced",
            "Uptime": uptime}


def test_the_donors_are_the_settled_synced_peers_the_longest_running_first() -> None:
    """A peer that has only just caught up (Uptime under 30 s) is not named while a
    settled one is; nor a joiner, a donor or a node outside the Primary component; the
    trailing comma lets Galera take another only when none of them can."""
    running = {0: synced("40"), 1: synced("3000"), 3: synced("12"),
               2: {**synced("9000"), "wsrep_local_state_comment": "Joined"},
               4: {**synced("9000"), "wsrep_cluster_status": "non-Primary"}}
    assert donors(running, "galera") == "galera-1,galera-0,"


def test_with_no_settled_peer_the_longest_running_alone_is_named() -> None:
    """After a whole-cluster outage every peer has just started: the seed, up longest,
    is the donor, not a joiner that has only just caught up from it."""
    assert donors({0: synced("9"), 2: synced("21"), 1: synced("3")}, "galera") == "galera-2,"


def test_no_synced_peer_names_no_donor() -> None:
    assert donors({}, "galera") == ""
    assert donors({0: {**synced("50"), "wsrep_local_state_comment": "Donor/Desynced"}},
                  "galera") == ""


def test_an_unreadable_uptime_counts_as_just_started() -> None:
    assert donors({0: synced("soon"), 1: synced("70")}, "db") == "db-1,"


@pytest.mark.parametrize(("given", "line"), [
    ("galera-1,galera-0,", "wsrep_sst_donor = galera-1,galera-0,"), ("", None)])
def test_the_config_names_the_donors_only_when_there_are_some(given: str,
                                                             line: str | None) -> None:
    text = render_config("10.0.0.3", "galera-2", "gcomm://10.0.0.1:4567", new_cluster=False,
                         donors=given)
    found = [x for x in text.splitlines() if x.startswith("wsrep_sst_donor")]
    assert found == ([line] if line else [])


A, B, C = (f"{n}0000000-d3f1-11f1-8e2e-0b5b0b0b0b0a" for n in "abc")


async def test_the_ballot_carries_the_saved_view(tmp_path: Path) -> None:
    work = prestart(tmp_path, "/nonexistent/mariadbd")
    (tmp_path / "data" / "grastate.dat").write_text(GraState(X, 9, False).text())
    (tmp_path / "data" / "gvwstate.dat").write_text(
        f"my_uuid: {B}\n#vwbeg\nview_id: 3 {A} 4\nbootstrap: 0\nmember: {A} 0\n"
        f"member: {B} 0\nmember: {C} 0\n#vwend\n")
    ballot = await work.own_ballot()
    assert ballot.view == SavedView(B, f"{A}:4", (A, B, C))


def test_the_seed_starts_by_pc_recovery_when_every_ballot_shows_the_view(
        tmp_path: Path) -> None:
    """The ballots seen count, not only those answering now: a joiner's init ends once
    it has seen the seed's end, and the seed must still decide."""
    work = prestart(tmp_path, "/nonexistent/mariadbd")
    views = [SavedView(m, f"{A}:4", (A, B, C)) for m in (A, B, C)]
    every = {o: Ballot(o, X, 9, view=v) for o, v in enumerate(views)}
    work.seen = dict(every)
    now = {0: every[0]}  # 1 and 2 have ended (or did not answer this round)
    choice = work.choose(now, range(3))
    assert choice.seed == 0 and "pc.recovery" in choice.reason
    start = work.seeding(choice, now, range(3))
    assert start.how == "recover" and "the fallback seed" in start.reason
    work.seen[2] = Ballot(2, X, 9)  # left cleanly: Galera removed its gvwstate.dat
    assert work.choose(now, range(3)).seed is None  # the live vote: ballots missing
    assert work.seeding(choice, every, range(3)).how == "seed"
    work.seen[2] = every[2]
    work.force = 0  # the operator's override always bootstraps
    assert work.seeding(work.choose(every, range(3)), every, range(3)).how == "seed"


def test_a_joiner_follows_the_seed_s_decision_as_soon_as_it_reads_it(
        tmp_path: Path) -> None:
    """Even without every ballot seen: the seed decided with all of them."""
    from dataclasses import replace

    work = prestart(tmp_path, "/nonexistent/mariadbd")  # galera-1
    views = [SavedView(m, f"{A}:4", (A, B, C)) for m in (A, B, C)]
    every = {o: Ballot(o, X, 9, view=v) for o, v in enumerate(views)}
    work.seen = {0: every[0], 1: every[1]}  # galera-2's init ended before it was read
    now = {0: every[0], 1: every[1]}
    assert work.choose(now, range(3)).seed is None  # not decided yet: ballots missing
    now[0] = replace(every[0], decided="recover")
    chosen = work.choose(now, range(3))
    assert chosen.seed == 0 and "starts first for pc.recovery" in chosen.reason
    start = work.seed_started(chosen, now, range(3))
    assert start is not None and start.how == "join"
    assert work.seed_started(chosen, {1: every[1]}, range(3)) is None  # its ballot unread
    work.force = 2  # the operator's override: no pc.recovery start is followed
    assert work.seed_started(chosen, now, range(3)) is None
