"""The exec store's start in the sidecar: init's plan by its hooks; a restart never seeds."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx

from agent.sidecar import build, run
from agent.stores.exec.api import ExecBackend
from agent.stores.exec.plan import PLAN, TAKEN, write_plan
from agent.stores.exec.start import ExecStarter
from tests.fakes import free_port
from tests.unit.stores.exec.fakes import gone, hooks, settings, until

RUNNING = "running"


def backend(tmp_path: Path, **bodies: str) -> ExecBackend:
    """Hooks that log their name and arguments to ``calls``; status says primary once a
    start hook ran (the ``running`` file), stopped before."""
    calls = tmp_path / "calls"
    logged = {name: f'echo "{name} $*" >> {calls}; ' + body for name, body in {
        "seed": f"touch {tmp_path / RUNNING}", "primary": f"touch {tmp_path / RUNNING}",
        "status": f"[ -e {tmp_path / RUNNING} ] && exit 8; exit 7", **bodies}.items()}
    given = settings(tmp_path, exec_hooks=hooks(tmp_path, **logged))
    return ExecBackend(httpx.AsyncClient(), "http://127.0.0.1:9090", settings=given)


def calls(tmp_path: Path) -> list[str]:
    path = tmp_path / "calls"
    lines = path.read_text().splitlines() if path.exists() else []
    return [line.strip() for line in lines if not line.startswith("status")]


class Recorded:
    """Events as the starter sends them."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, bool]] = []

    async def event(self, *, reason: str, message: str, warning: bool = False) -> None:
        self.sent.append((reason, message, warning))


def starter(tmp_path: Path, exec_: ExecBackend, primaries: list[str] | None = None,
            leaving: bool = False, restart_failed_seconds: float = 0.0,
            events: Recorded | None = None) -> ExecStarter:
    async def find() -> list[str]:
        return list(primaries or [])

    return ExecStarter(exec_, tmp_path / "out", find_primaries=find,
                       leaving=lambda: leaving, retry_seconds=0.05,
                       restart_failed_seconds=restart_failed_seconds, events=events)


async def run_until(start: ExecStarter, condition: Callable[[], bool], what: str) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(start.run(stop))
    try:
        await until(condition, what)
    finally:
        stop.set()
        await task


async def test_the_vote_s_seed_runs_seed_once(tmp_path: Path) -> None:
    write_plan(tmp_path / "out", {"role": "seed", "primaries": [], "reason": "highest"})
    start = starter(tmp_path, backend(tmp_path))
    await run_until(start, lambda: start.state == "running", "running after seed")
    assert calls(tmp_path) == ["seed"]
    assert not (tmp_path / "out" / PLAN).exists() and (tmp_path / "out" / TAKEN).exists()


async def test_a_join_appends_the_primaries_as_rss_does(tmp_path: Path) -> None:
    write_plan(tmp_path / "out", {"role": "primary", "primaries": ["a"], "reason": "join"})
    start = starter(tmp_path, backend(tmp_path), primaries=["exec-0.x", "exec-2.x"])
    await run_until(start, lambda: start.state == "running", "running after a join")
    assert calls(tmp_path) == ["primary exec-0.x exec-2.x"]


async def test_a_restart_never_seeds_and_waits_for_a_primary(tmp_path: Path) -> None:
    write_plan(tmp_path / "out", {"role": "seed", "primaries": [], "reason": "highest"})
    first = starter(tmp_path, backend(tmp_path))
    await run_until(first, lambda: first.state == "running", "the first start")
    (tmp_path / RUNNING).unlink()  # the container restarts: init does not run again
    (tmp_path / "calls").unlink()
    again = starter(tmp_path, backend(tmp_path))
    await run_until(again, lambda: again.state == "waiting", "waiting for a primary")
    assert calls(tmp_path) == [] and "never seeds" in again.reason


async def test_a_failed_start_is_run_again(tmp_path: Path) -> None:
    tries = tmp_path / "tries"
    exec_ = backend(tmp_path, primary=f'echo x >> {tries}; [ $(wc -l < {tries}) -ge 2 ] '
                                      f'|| exit 1; touch {tmp_path / RUNNING}')
    start = starter(tmp_path, exec_, primaries=["p"])
    await run_until(start, lambda: start.state == "running", "running after a retry")
    assert calls(tmp_path) == ["primary p", "primary p"]


async def test_a_node_that_stops_by_itself_is_joined_again(tmp_path: Path) -> None:
    start = starter(tmp_path, backend(tmp_path), primaries=["p"])
    stop = asyncio.Event()
    task = asyncio.create_task(start.run(stop))
    try:
        # The hook logs its call before it touches ``running``: the join is done when the
        # starter has seen the hook return, not when the call is logged.
        await until(lambda: start.state == "running" and calls(tmp_path) == ["primary p"],
                    "the first join done")
        (tmp_path / RUNNING).unlink()
        start.backend.role = (await start.backend.status())  # the poll loop's word
        await until(lambda: calls(tmp_path) == ["primary p"] * 2, "the join after a crash")
    finally:
        stop.set()
        await task


async def test_a_leaving_node_is_not_started_again(tmp_path: Path) -> None:
    start = starter(tmp_path, backend(tmp_path), primaries=["p"], leaving=True)
    await run_until(start, lambda: start.state == "held", "held while leaving")
    assert calls(tmp_path) == []


async def test_terminate_stops_what_the_start_hook_left_running(tmp_path: Path) -> None:
    pid = tmp_path / "store.pid"
    exec_ = backend(tmp_path, primary=f"sleep 300 > /dev/null 2>&1 & echo $! > {pid}; "
                                      f"touch {tmp_path / RUNNING}")
    start = starter(tmp_path, exec_, primaries=["p"])
    await run_until(start, lambda: start.state == "running", "started")
    store = int(pid.read_text())
    assert await start.terminate(5.0)
    assert gone(store)


STUCK = "stuck"


def stuck_backend(tmp_path: Path, clock: list[float]) -> ExecBackend:
    """status answers failed (exit 1) while the ``stuck`` file exists; stop ends that."""
    exec_ = backend(tmp_path,
                    status=f"[ -e {tmp_path / STUCK} ] && {{ echo 'non-Primary' >&2; exit 1; }}; "
                           f"[ -e {tmp_path / RUNNING} ] && exit 8; exit 7",
                    stop=f"rm -f {tmp_path / RUNNING} {tmp_path / STUCK}")
    exec_.clock = lambda: clock[0]
    return exec_


async def fail_for(exec_: ExecBackend, clock: list[float], seconds: float) -> None:
    """The poll loop's status runs while the node answers failed for ``seconds``."""
    for _ in range(exec_.threshold):
        await exec_.status()
    clock[0] += seconds
    await exec_.status()


async def test_a_stuck_node_is_stopped_and_joined_again(tmp_path: Path) -> None:
    clock = [100.0]
    exec_ = stuck_backend(tmp_path, clock)
    events = Recorded()
    start = starter(tmp_path, exec_, primaries=["exec-0.x"], restart_failed_seconds=30,
                    events=events)
    assert await start.attempt(None) and calls(tmp_path) == ["primary exec-0.x"]
    (tmp_path / STUCK).touch()
    await fail_for(exec_, clock, 29)
    assert exec_.role == "failed" and exec_.failed_since == 100.0
    assert await start.attempt(None)  # 29 s: still counted running, nothing done
    assert calls(tmp_path) == ["primary exec-0.x"] and start.state == "running"
    clock[0] += 1
    assert await start.attempt(None)
    assert calls(tmp_path) == ["primary exec-0.x", "stop exec-0.x", "primary exec-0.x"]
    assert start.state == "running" and start.restarts == 1
    assert exec_.failures == 0 and exec_.failed_since is None
    [(reason, message, warning)] = events.sent
    assert (reason, warning) == ("ExecMemberRestarted", True)
    assert "failed for 30 s" in message and "non-Primary" in message
    assert "exec-0.x run as primary" in message


async def test_what_status_said_during_a_start_is_no_stuck_node(tmp_path: Path) -> None:
    """A start hook that takes long (a state transfer) while status answers failed (no
    answer yet): once it succeeds, the failed streak begins anew instead of stopping the
    node that has just joined."""
    clock = [100.0]
    exec_ = stuck_backend(tmp_path, clock)
    start = starter(tmp_path, exec_, primaries=["exec-0.x"], restart_failed_seconds=30)
    (tmp_path / STUCK).touch()
    await fail_for(exec_, clock, 45)  # the poll loop, while the start hook ran
    assert exec_.role == "failed"
    (tmp_path / STUCK).unlink()
    assert await start.attempt(None) and calls(tmp_path) == ["primary exec-0.x"]
    assert exec_.failed_since is None
    assert await start.attempt(None)  # counted failed still, until the next poll
    assert calls(tmp_path) == ["primary exec-0.x"] and start.restarts == 0


async def test_a_restart_whose_stop_fails_is_tried_again_with_one_event(
        tmp_path: Path) -> None:
    clock = [0.0]
    exec_ = stuck_backend(tmp_path, clock)
    events = Recorded()
    start = starter(tmp_path, exec_, primaries=["p"], restart_failed_seconds=30,
                    events=events)
    assert await start.attempt(None)
    (tmp_path / STUCK).touch()
    (tmp_path / "stop.sh").write_text(f"#!/bin/sh\necho \"stop $*\" >> {tmp_path / 'calls'}\n"
                                      "echo 'shutdown refused' >&2; exit 1\n")
    await fail_for(exec_, clock, 31)
    assert await start.attempt(None) and await start.attempt(None)
    assert calls(tmp_path) == ["primary p", "stop p", "stop p"]
    assert "the restart's stop failed" in start.reason and "shutdown refused" in start.reason
    assert len(events.sent) == 1 and start.restarts == 0


async def test_a_stuck_node_with_no_primary_elsewhere_is_left_alone(tmp_path: Path) -> None:
    clock = [0.0]
    exec_ = stuck_backend(tmp_path, clock)
    (tmp_path / RUNNING).touch()
    events = Recorded()
    start = starter(tmp_path, exec_, restart_failed_seconds=30, events=events)
    await run_until(start, lambda: start.state == "running", "the node found running")
    (tmp_path / STUCK).touch()
    await fail_for(exec_, clock, 600)
    await run_until(start, lambda: "no other pod runs as primary" in start.reason,
                    "the restart held back")
    assert calls(tmp_path) == [] and start.restarts == 0
    assert events.sent == []


async def test_a_status_that_cannot_answer_never_restarts(tmp_path: Path) -> None:
    """A timed-out status is no word on the node: the failed streak does not start."""
    given = settings(tmp_path, exec_hooks=hooks(tmp_path, timeout="0.2s", status="sleep 5"))
    exec_ = ExecBackend(httpx.AsyncClient(), "http://127.0.0.1:9090", settings=given)
    for _ in range(exec_.threshold):
        await exec_.status()
    assert exec_.role == "failed" and exec_.failed_since is None


async def test_a_stuck_node_without_a_stop_hook_is_left_alone_without_asking(
        tmp_path: Path) -> None:
    clock = [0.0]
    exec_ = stuck_backend(tmp_path, clock)
    exec_.hooks.hooks = exec_.hooks.hooks.model_copy(update={"stop": None})
    asked: list[str] = []

    async def find() -> list[str]:
        asked.append("primaries")
        return ["p"]

    start = ExecStarter(exec_, tmp_path / "out", find_primaries=find, leaving=lambda: False,
                        retry_seconds=0.05, restart_failed_seconds=30)
    assert await start.attempt(None)
    (tmp_path / STUCK).touch()
    await fail_for(exec_, clock, 31)
    asked.clear()
    assert await start.attempt(None)
    assert asked == [] and "not restarted: no stop hook" in start.reason
    assert calls(tmp_path) == ["primary p"] and start.restarts == 0


async def test_a_start_hook_still_running_at_the_pod_s_end_leaves_no_store(
        tmp_path: Path) -> None:
    """The start-versus-SIGTERM race, forced: the vote's seed hook is slow (2 s before it
    starts the store) and the pod's end comes while it runs. The sidecar lets the attempt
    end, then stops what it started: no store outlives the sidecar (a sidecar that went
    straight to its terminate found nothing to stop and left the store running)."""
    began, pid = tmp_path / "began", tmp_path / "store.pid"
    seed = (f"touch {began}; sleep 2; sleep 300 > /dev/null 2>&1 & echo $! > {pid}; "
            f"touch {tmp_path / RUNNING}")
    status = f"[ -e {tmp_path / RUNNING} ] && exit 8; exit 7"
    given = settings(tmp_path, exec_hooks=hooks(tmp_path, timeout="30s", seed=seed,
                                                status=status),
                     listen=f"127.0.0.1:{free_port()}", termination_grace_period_seconds=30)
    write_plan(tmp_path / "out", {"role": "seed", "primaries": [], "reason": "highest"})
    stop = asyncio.Event()
    async with httpx.AsyncClient() as client:
        parts = build(given, client, domain="cluster.local")
        sidecar = asyncio.create_task(run(parts, stop=stop, sigterm=lambda: True))
        await until(began.exists, "the seed hook begun")
        stop.set()  # SIGTERM while the hook runs
        assert await asyncio.wait_for(sidecar, 30) == 0
    assert pid.exists(), "the sidecar ended before the seed hook it was running"
    assert gone(int(pid.read_text())), "the store the seed hook started outlived the sidecar"
