"""What every settings model shares: AGENT_* env, a flag per field, bounded durations."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from agent.config.types import MAX_DURATION_SECONDS

ENV_PREFIX = "AGENT_"


class AgentSettings(BaseSettings):
    """A model read from AGENT_* env and flags: the shared Settings, and each store's own
    options (``agent/stores/<store>/options.py``, named in the registry)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="ignore",
        populate_by_name=True,
        env_ignore_empty=True,
        frozen=True,
        # inf/nan pass float parsing but break every timer (socket timeouts overflow).
        allow_inf_nan=False,
    )

    @field_validator("*", mode="after")
    @classmethod
    def _durations_bounded(cls, value: Any, info: ValidationInfo) -> Any:
        """Every ``*_seconds`` setting is at most a week: larger ones overflow timers."""
        name = info.field_name or ""
        if name.endswith("_seconds") and isinstance(value, float) \
                and value > MAX_DURATION_SECONDS:
            raise ValueError(f"at most {MAX_DURATION_SECONDS:g} seconds (a week)")
        return value
