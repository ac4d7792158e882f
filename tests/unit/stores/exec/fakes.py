"""Hooks for the exec tests: small sh scripts in a temporary directory, and settings naming them."""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.config.settings import Settings
from agent.retry import Backoff, Done, Pending, poll
from agent.stores.exec.options import ExecOptions


def script(directory: Path, name: str, body: str) -> str:
    """An executable sh script ``name`` running ``body``; its path."""
    path = directory / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def hooks(directory: Path, timeout: str = "5s", **bodies: str) -> dict[str, Any]:
    """AGENT_EXEC_HOOKS naming a script per hook: sequence prints 0, status says primary,
    the others succeed, unless ``bodies`` say otherwise."""
    default = {"sequence": "echo 0", "seed": "exit 0", "primary": "exit 0",
               "status": "exit 8", "stop": "exit 0"}
    default.update(bodies)
    return {name: {"command": [script(directory, f"{name}.sh", body)], "timeout": timeout}
            for name, body in default.items() if body is not None}


def settings(directory: Path, *, pod: str = "exec-1", **kwargs: Any) -> Settings:
    """Settings of pod ``pod`` of an exec store whose hooks are ``hooks(directory)``
    (``exec_hooks`` in kwargs replaces them)."""
    if "exec_hooks" not in kwargs:
        kwargs["exec_hooks"] = hooks(directory)
    kwargs.setdefault("output_dir", directory / "out")
    own = {key: kwargs.pop(key) for key in list(kwargs) if key in ExecOptions.model_fields}
    kwargs.setdefault("listen", "127.0.0.1:9090")
    return Settings(backend="exec", pod_name=pod, **kwargs).with_options(ExecOptions(**own))


def gone(pid: int) -> bool:
    """Whether process ``pid`` has ended (exited, or a zombie nobody reaped yet)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state == "Z"


async def until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` for up to 10 s; DeadlineExceeded naming ``what`` otherwise."""
    async def attempt() -> Done[bool] | Pending:
        return Done(True) if condition() else Pending(what)

    await poll(attempt, what=what, timeout_seconds=10.0,
               backoff=Backoff(initial_seconds=0.02, maximum_seconds=0.05))
