"""The exec store's own settings: its hooks as the RSS operator names them, and their policy."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from agent.config.base import AgentSettings
from agent.config.types import MAX_DURATION_SECONDS
from agent.errors import ConfigError

if TYPE_CHECKING:
    from agent.config.settings import Settings

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def go_duration(value: object) -> object:
    """``"1m30s"`` (Go's time.ParseDuration, as RSS's ``timeout: 60s``) to seconds; a
    number is taken as seconds; anything else is left for the float check to name."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    total, at = 0.0, 0
    for found in _PART.finditer(text):
        if found.start() != at:
            break
        total += float(found[1]) * _UNITS[found[2]]
        at = found.end()
    if not text or at != len(text):
        raise ValueError(f"{value!r} is not a duration (like 60s, 1m30s or 500ms)")
    return total


Duration = Annotated[float, BeforeValidator(go_duration)]


class HookSpec(BaseModel):
    """One hook: the command run as is (argv: no shell unless the user writes one), how
    long it may take, and environment added to the agent's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: list[str] = Field(min_length=1)
    timeout: Duration = Field(default=60.0, gt=0, le=MAX_DURATION_SECONDS)
    env: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _program_named(self) -> HookSpec:
        if not self.command[0].strip():
            raise ValueError("command[0] (the program) is empty")
        return self


class ExecHooks(BaseModel):
    """The RSS operator's ``pod.commands`` block. ``secondary`` falls back to ``primary``
    (as RSS does); ``stop`` and ``members`` are optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sequence: HookSpec
    seed: HookSpec
    primary: HookSpec
    secondary: HookSpec | None = None
    status: HookSpec
    stop: HookSpec | None = None
    # Not RSS: a store that can list its members prints them as JSON (members, leader,
    # indexes), so the quorum guard and membership readiness apply to it too.
    members: HookSpec | None = None

    def start_hook(self, role: str) -> HookSpec:
        """The hook that starts this node as ``role`` (seed, primary or secondary)."""
        if role == "seed":
            return self.seed
        if role == "secondary" and self.secondary is not None:
            return self.secondary
        return self.primary


class ExecOptions(AgentSettings):
    """What only the exec store reads (AGENT_EXEC_*); the hooks are required."""

    exec_hooks: ExecHooks | None = Field(
        default=None,
        validate_default=True,
        description="exec: the hooks, as JSON in the RSS operator's `pod.commands` shape: "
        '{"sequence": {"command": [...], "timeout": "60s", "env": {...}}, "seed", '
        '"primary", "secondary", "status", "stop", "members"}. sequence, seed, primary '
        "and status are required; secondary falls back to primary. Each command is an "
        "argv (no shell unless you write one); seed, primary and secondary get the "
        "current primaries' names appended, as RSS does.",
    )
    exec_status_failures: int = Field(
        default=3,
        ge=1,
        le=100,
        description="exec: consecutive failed `status` runs before the node counts as "
        "failed (not ready). One transient failure never changes anything; a `status` "
        "that times out or cannot run never stops anything.",
    )
    exec_restart_failed_seconds: float = Field(
        default=60.0,
        ge=0,
        description="exec: a node whose `status` has answered failed (an exit other than "
        "0, 7 or 8; not a timeout) this long without a break, while another pod runs as "
        "primary, is stopped by `stop` and joined again by its start hook (a Warning "
        "Event `ExecMemberRestarted`): a stuck member, such as a Galera node left "
        "non-Primary by a failed state transfer. With no primary elsewhere it is left "
        "alone. 0: never.",
    )
    exec_primaries: int | None = Field(
        default=None,
        ge=1,
        le=99,
        description="exec: at most this many pods run as primary (RSS's spec.primaries): "
        "a pod that joins when that many run starts by the `secondary` hook. Unset: every "
        "pod joins as primary.",
    )
    exec_force_seed_ordinal: int | None = Field(
        default=None,
        ge=0,
        description="exec: seed from this ordinal without the vote (a failed or missing "
        "`sequence` waited for): for a person who knows which volume holds the latest "
        "writes. Remove it once the cluster is up.",
    )


    @field_validator("exec_hooks")
    @classmethod
    def _hooks_given(cls, value: ExecHooks | None) -> ExecHooks | None:
        if value is None:
            raise ValueError("exec needs its hooks (sequence, seed, primary, status at least)")
        return value

    @property
    def hooks(self) -> ExecHooks:
        """The hooks (validated: always set)."""
        assert self.exec_hooks is not None
        return self.exec_hooks


def exec_options(settings: Settings) -> ExecOptions:
    """The exec store's options for ``settings``; ConfigError when its hooks are unset."""
    try:
        return settings.options(ExecOptions)
    except ValidationError:
        raise ConfigError("exec: AGENT_EXEC_HOOKS must name the hooks") from None
