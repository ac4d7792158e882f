"""Running a hook: exit codes, output, environment, timeouts that kill the whole group."""

from __future__ import annotations

import os
import time
from pathlib import Path

from agent.stores.exec.hooks import KEEP_BYTES, run_hook
from agent.stores.exec.options import HookSpec
from tests.unit.stores.exec.fakes import gone, script, until


async def test_argv_arguments_environment_and_output(tmp_path: Path) -> None:
    hook = script(tmp_path, "h", 'echo "$1 $2 $POD_NAME $OWN"; echo oops >&2; exit 3')
    result = await run_hook("seed", HookSpec(command=[hook], env={"OWN": "mine"}),
                            ["a b", "c"], env={"POD_NAME": "exec-0"})
    assert result.exit_code == 3 and not result.ok
    assert result.stdout == "a b c exec-0 mine\n" and result.stderr == "oops\n"
    assert result.argv == (hook, "a b", "c") and result.error is None


async def test_no_shell_unless_the_user_writes_one(tmp_path: Path) -> None:
    result = await run_hook("status", HookSpec(command=["echo", "$HOME;", "x"]))
    assert result.stdout == "$HOME; x\n"


async def test_a_program_that_cannot_run_is_a_result_not_an_exception(tmp_path: Path) -> None:
    result = await run_hook("status", HookSpec(command=[str(tmp_path / "missing")]))
    assert result.exit_code is None and result.outcome == "error"
    assert "cannot run" in (result.error or "")


async def test_a_hung_hook_is_killed_with_everything_it_started(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    hook = script(tmp_path, "h", f"sleep 300 & echo $! > {pid_file}; wait")
    started = time.monotonic()
    result = await run_hook("status", HookSpec(command=[hook], timeout=0.5))
    assert time.monotonic() - started < 5
    assert result.exit_code is None and result.outcome == "timeout"
    # SIGKILL went to the whole group; the background sleep dies when it next runs (on
    # a loaded host, maybe after run_hook has returned).
    child = int(pid_file.read_text())
    await until(lambda: gone(child), f"the hook's background sleep {child} gone")


async def test_a_daemon_left_running_does_not_hold_the_hook(tmp_path: Path) -> None:
    """A start hook leaves its store running with the hook's pipes: the hook's result
    comes when the hook exits, not when the store does."""
    pid_file = tmp_path / "daemon.pid"
    hook = script(tmp_path, "h", f"sleep 300 & echo $! > {pid_file}; echo started")
    started = time.monotonic()
    result = await run_hook("seed", HookSpec(command=[hook], timeout=30))
    try:
        assert time.monotonic() - started < 5
        assert result.ok and result.stdout == "started\n" and result.pid is not None
        assert os.getpgid(int(pid_file.read_text())) == result.pid  # in the hook's group
    finally:
        os.killpg(result.pid or 0, 9)


async def test_only_the_end_of_a_flood_is_kept(tmp_path: Path) -> None:
    hook = script(tmp_path, "h", "head -c 300000 /dev/zero | tr '\\0' x; echo END")
    result = await run_hook("status", HookSpec(command=[hook]))
    assert result.ok and len(result.stdout) <= KEEP_BYTES
    assert result.stdout.endswith("xEND\n")
