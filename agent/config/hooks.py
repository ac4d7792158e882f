"""The exec store's hooks as the RSS operator names them: command, timeout, environment."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from agent.config.types import MAX_DURATION_SECONDS

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
