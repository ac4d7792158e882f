"""Shared fixtures: a clean agent environment for every test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def clean_agent_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No AGENT_* / POD_* variables leak from the shell into a test."""
    for key in list(os.environ):
        if key.startswith(("AGENT_", "POD_")):
            monkeypatch.delenv(key)
    yield
