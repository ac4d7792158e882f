"""Exec init: sequence, then join a running primary or vote for the seed; the plan it leaves."""

from __future__ import annotations

import asyncio
import gc
import json
import time
import weakref
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from agent.config.settings import Settings
from agent.discovery import Peer, ServiceNames
from agent.errors import ConfigError, DeadlineExceeded, KubeError
from agent.identity import PodIdentity
from agent.kube import Kube
from agent.storekit.voting import READ
from agent.stores.exec.plan import PLAN
from agent.stores.exec.prestart import ExecPrestart
from tests.unit.stores.exec.fakes import hooks, settings

NAMES = ServiceNames(statefulset="exec", service="exec", namespace="db", domain="cluster.local")


def url(ordinal: int, path: str) -> str:
    return f"http://exec-{ordinal}.exec.db.svc.cluster.local:9090{path}"


@pytest.fixture(autouse=True)
def three_parallel_pods(monkeypatch: pytest.MonkeyPatch) -> None:
    async def pod_management(self: Kube, name: str) -> tuple[int, int, str]:
        return 3, 0, "Parallel"

    monkeypatch.setattr(Kube, "pod_management", pod_management)


def prestart(tmp_path: Path, ordinal: int = 1, **bodies: str) -> ExecPrestart:
    given: Settings = settings(tmp_path, pod=f"exec-{ordinal}",
                               exec_hooks=hooks(tmp_path, **bodies), namespace="db")
    return ExecPrestart(given, NAMES, PodIdentity("exec", ordinal), httpx.AsyncClient())


def peer_answers(ballots: dict[int, Any], roles: dict[int, str] | None = None) -> None:
    """Peers' inits answer with ``ballots`` (sequence, or None for a failed one);
    sidecars with ``roles``; the rest refuse."""
    for ordinal in (0, 2):
        if ordinal in ballots:
            sequence = ballots[ordinal]
            ballot = {"ordinal": ordinal, "sequence": sequence,
                      "problem": None if sequence is not None else "sequence hook exited 1"}
            respx.get(url(ordinal, "/init"), params={"from": "exec-1"}).respond(
                json={"ballot": ballot})
        else:
            respx.get(url(ordinal, "/init"), params={"from": "exec-1"}).mock(
                side_effect=httpx.ConnectError("refused"))
        role = (roles or {}).get(ordinal)
        if role is not None:
            respx.get(url(ordinal, "/status")).respond(
                json={"view": {"local": {"details": {"role": role}}}})
        else:
            respx.get(url(ordinal, "/status")).respond(404)


async def nothing_new() -> list[Peer]:
    return []


def plan(tmp_path: Path) -> dict[str, Any]:
    document = json.loads((tmp_path / "out" / PLAN).read_text())
    assert isinstance(document, dict)
    return document


@respx.mock
async def test_the_highest_sequence_seeds(tmp_path: Path) -> None:
    peer_answers({0: 4, 2: 9})
    work = prestart(tmp_path, sequence="echo 9")  # tied with 2: the lowest ordinal, 1
    extra = await work.prepare([], deadline=time.monotonic() + 10, rediscover=nothing_new)
    assert extra["exec_role"] == "seed" and "tied with 2" in extra["exec_reason"]
    assert plan(tmp_path)["role"] == "seed" and plan(tmp_path)["sequence"] == 9


@respx.mock
async def test_a_running_primary_is_joined_whatever_the_vote(tmp_path: Path) -> None:
    peer_answers({}, roles={0: "secondary", 2: "primary"})
    work = prestart(tmp_path, sequence="echo 99")
    extra = await work.prepare([], deadline=time.monotonic() + 10, rediscover=nothing_new)
    assert extra["exec_role"] == "primary"
    assert extra["exec_primaries"] == ["exec-2.exec.db.svc.cluster.local"]
    assert plan(tmp_path)["primaries"] == extra["exec_primaries"]


@respx.mock
async def test_past_the_primaries_wanted_a_pod_joins_as_secondary(tmp_path: Path) -> None:
    peer_answers({}, roles={0: "primary", 2: "primary"})
    given = settings(tmp_path, pod="exec-1", exec_hooks=hooks(tmp_path), exec_primaries=2)
    work = ExecPrestart(given, NAMES, PodIdentity("exec", 1), httpx.AsyncClient())
    extra = await work.prepare([], deadline=time.monotonic() + 10, rediscover=nothing_new)
    assert extra["exec_role"] == "secondary" and "AGENT_EXEC_PRIMARIES 2" in extra["exec_reason"]
    assert len(extra["exec_primaries"]) == 2


@respx.mock
async def test_the_statefulset_is_read_while_the_ballot_is_made(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The API read (its client's import included) overlaps this pod's sequence hook
    instead of delaying the first round: the hook here answers only once the read began,
    and it runs once."""
    began, runs = tmp_path / "read-began", tmp_path / "runs"

    async def pod_management(self: Kube, name: str) -> tuple[int, int, str]:
        began.touch()
        return 3, 0, "Parallel"

    monkeypatch.setattr(Kube, "pod_management", pod_management)
    peer_answers({0: 4, 2: 9})
    work = prestart(tmp_path, sequence=f"echo x >> {runs}; for i in $(seq 400); do "
                                       f"[ -e {began} ] && break; sleep 0.01; done; "
                                       f"[ -e {began} ] && echo 9")
    extra = await work.prepare([], deadline=time.monotonic() + 10, rediscover=nothing_new)
    assert extra["exec_role"] == "seed"
    assert len(runs.read_text().splitlines()) == 1  # answered at once: no second round


@respx.mock
async def test_a_failed_statefulset_read_waits_a_round_and_is_read_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[str] = []

    async def pod_management(self: Kube, name: str) -> tuple[int, int, str]:
        reads.append(name)
        if len(reads) == 1:
            raise KubeError("the API server timed out", retryable=True)
        return 3, 0, "Parallel"

    monkeypatch.setattr(Kube, "pod_management", pod_management)
    peer_answers({0: 4, 2: 9})
    work = prestart(tmp_path, sequence="echo 9")
    extra = await work.prepare([], deadline=time.monotonic() + 10, rediscover=nothing_new)
    assert extra["exec_role"] == "seed" and reads == ["exec", "exec"]


async def unseen_failures(work: ExecPrestart) -> list[dict[str, Any]]:
    """What asyncio reported (a task's failure never retrieved) while ``work``'s vote
    failed with "not executable", and once everything it held was collected."""
    unattended: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _, context: unattended.append(context))

    async def fail() -> None:
        with pytest.raises(ConfigError, match="not executable"):
            await work.prepare([], deadline=time.monotonic() + 10, rediscover=nothing_new)

    try:
        await fail()  # its frames (and the tasks they hold) are gone once it returns
        gc.collect()
    finally:
        loop.set_exception_handler(None)
    return unattended


async def test_a_failed_ballot_retrieves_the_failed_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """This pod's ballot fails after the StatefulSet read has failed: the init ends with
    the ballot's error, and the read's failure is retrieved, not left for asyncio to log
    ("Task exception was never retrieved") when the task is collected."""
    reads: list[weakref.ref[asyncio.Task[Any]]] = []

    async def pod_management(self: Kube, name: str) -> tuple[int, int, str]:
        raise KubeError("statefulsets.apps is forbidden", retryable=False)

    async def own_ballot(self: ExecPrestart) -> None:
        read = next(task for task in asyncio.all_tasks() if task.get_name() == READ)
        reads.append(weakref.ref(read))
        await asyncio.wait([read])  # done, its failure not retrieved by waiting
        raise ConfigError("the sequence hook is not executable")

    monkeypatch.setattr(Kube, "pod_management", pod_management)
    monkeypatch.setattr(ExecPrestart, "own_ballot", own_ballot)
    assert await unseen_failures(prestart(tmp_path, sequence="echo 9")) == []
    assert [read() for read in reads] == [None]  # collected: asyncio had its say


async def test_a_vote_that_fails_after_a_failed_read_retrieves_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The StatefulSet's first read fails (retryable: read again next round), and the
    second fails too; then the vote itself fails: the second read's failure is retrieved
    when the vote ends, not logged by asyncio."""
    reads: list[weakref.ref[asyncio.Task[Any]]] = []
    rounds: list[int] = []

    async def pod_management(self: Kube, name: str) -> tuple[int, int, str]:
        task = asyncio.current_task()
        assert task is not None
        reads.append(weakref.ref(task))
        raise KubeError("the API server timed out", retryable=True)

    async def refresh_ballot(self: ExecPrestart) -> None:
        rounds.append(len(rounds))
        if len(rounds) == 2:
            running = [task for task in asyncio.all_tasks() if task.get_name() == READ]
            if running:  # else already done
                await asyncio.wait(running)  # the second read done, its failure unseen
            del running  # the test's own references would keep it from collection
            raise ConfigError("the sequence hook is not executable")

    monkeypatch.setattr(Kube, "pod_management", pod_management)
    monkeypatch.setattr(ExecPrestart, "refresh_ballot", refresh_ballot)
    assert await unseen_failures(prestart(tmp_path, sequence="echo 9")) == []
    assert len(reads) == 2 and all(read() is None for read in reads)  # both collected


@respx.mock
async def test_a_peer_whose_sequence_failed_blocks_the_seed(tmp_path: Path) -> None:
    peer_answers({0: None, 2: 1})
    work = prestart(tmp_path, sequence="echo 50")
    with pytest.raises(DeadlineExceeded, match="ordinal 0: sequence hook exited 1"):
        await work.prepare([], deadline=time.monotonic() + 1.5, rediscover=nothing_new)
    assert not (tmp_path / "out" / PLAN).exists()


@respx.mock
async def test_this_pod_s_failing_sequence_is_run_again_until_it_answers(tmp_path: Path) -> None:
    peer_answers({0: 1, 2: 1})
    tries = tmp_path / "tries"
    work = prestart(tmp_path, sequence=f'echo x >> {tries}; [ $(wc -l < {tries}) -ge 3 ] '
                                       '|| { echo "disk busy" >&2; exit 1; }; echo 5')
    document = work.init_document()
    assert document["ballot"] is None
    extra = await work.prepare([], deadline=time.monotonic() + 20, rediscover=nothing_new)
    assert extra["exec_role"] == "seed" and len(tries.read_text().splitlines()) == 3


@respx.mock
async def test_garbage_from_sequence_is_a_problem_published_to_peers(tmp_path: Path) -> None:
    peer_answers({0: 1, 2: 1})
    work = prestart(tmp_path, sequence="echo seqno=12")
    with pytest.raises(DeadlineExceeded):
        await work.prepare([], deadline=time.monotonic() + 1, rediscover=nothing_new)
    ballot = work.init_document()["ballot"]
    assert ballot["sequence"] is None and "printed 'seqno=12'" in ballot["problem"]


@respx.mock
async def test_the_override_seeds_without_the_vote(tmp_path: Path) -> None:
    peer_answers({})
    given = settings(tmp_path, pod="exec-1", exec_hooks=hooks(tmp_path, sequence="exit 1"),
                     exec_force_seed_ordinal=1)
    work = ExecPrestart(given, NAMES, PodIdentity("exec", 1), httpx.AsyncClient())
    extra = await work.prepare([], deadline=time.monotonic() + 5, rediscover=nothing_new)
    assert extra["exec_role"] == "seed" and "override" in extra["exec_reason"]


async def test_the_plan_needs_a_shared_volume(tmp_path: Path) -> None:
    given = settings(tmp_path, output_dir=None)
    work = ExecPrestart(given, NAMES, PodIdentity("exec", 1), httpx.AsyncClient())
    with pytest.raises(ConfigError, match="AGENT_OUTPUT_DIR"):
        await work.prepare([], deadline=time.monotonic() + 1, rediscover=nothing_new)
