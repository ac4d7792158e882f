"""The exec store's start in the sidecar: init's plan by its hooks; a restart never seeds."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx

from agent.exec_start import ExecStarter
from agent.retry import Backoff, Done, Pending, poll
from agent.stores.exec.api import ExecBackend
from agent.stores.exec.plan import PLAN, TAKEN, write_plan
from tests.unit.stores.exec.fakes import gone, hooks, settings

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


async def until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` for up to 10 s; DeadlineExceeded naming ``what`` otherwise."""
    async def attempt() -> Done[bool] | Pending:
        return Done(True) if condition() else Pending(what)

    await poll(attempt, what=what, timeout_seconds=10.0,
               backoff=Backoff(initial_seconds=0.02, maximum_seconds=0.05))


def starter(tmp_path: Path, exec_: ExecBackend, primaries: list[str] | None = None,
            leaving: bool = False) -> ExecStarter:
    async def find() -> list[str]:
        return list(primaries or [])

    return ExecStarter(exec_, tmp_path / "out", find_primaries=find,
                       leaving=lambda: leaving, retry_seconds=0.05)


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
        await until(lambda: calls(tmp_path) == ["primary p"], "the first join")
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
