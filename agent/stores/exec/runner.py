"""The hooks as the agent runs them: the pod's identity in their env, the latest result kept."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import structlog

from agent.config.settings import Settings
from agent.stores.exec.contract import HookResult
from agent.stores.exec.hooks import run_hook
from agent.stores.exec.options import ExecHooks, HookSpec, exec_options

log = structlog.get_logger("agent.exec")


class HookRunner:
    """Runs the configured hooks; remembers each hook's latest result (for /status) and
    tells ``on_result`` of every run (the sidecar's duration metric)."""

    def __init__(self, hooks: ExecHooks, env: dict[str, str]) -> None:
        self.hooks = hooks
        self.env = env
        self.latest: dict[str, HookResult] = {}
        self.on_result: Callable[[HookResult], None] | None = None

    @classmethod
    def of(cls, settings: Settings) -> HookRunner:
        """The runner for ``settings``; ConfigError when AGENT_EXEC_HOOKS is unset."""
        hooks = exec_options(settings).hooks
        env = {key: value for key, value in (
            ("POD_NAME", settings.pod_name), ("POD_NAMESPACE", settings.namespace),
            ("POD_IP", settings.pod_ip), ("STATEFULSET_NAME", settings.statefulset_name()),
            ("SERVICE_NAME", settings.service)) if value}
        return cls(hooks, env)

    async def run(self, name: str, spec: HookSpec, args: Sequence[str] = ()) -> HookResult:
        """Run one hook (``name`` as it is reported); log a failure naming it."""
        result = await run_hook(name, spec, args, env=self.env)
        self.latest[name] = result
        if self.on_result is not None:
            self.on_result(result)
        if result.ok:
            log.debug("hook_ran", hook=name, seconds=round(result.seconds, 3))
        elif name != "status":  # status's exit code is its answer; judged by its caller
            log.warning("hook_failed", hook=name, exit_code=result.exit_code,
                        error=result.error, reason=result.why())
        return result

    def as_dict(self) -> dict[str, Any]:
        return {name: result.as_dict() for name, result in sorted(self.latest.items())}
