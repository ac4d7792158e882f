"""Shared fixtures: a clean agent environment for every test; a missing real peer."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import NoReturn, TypeVar

import pytest

from player.peers import MissingBinary

T = TypeVar("T")


def missing(problem: str) -> NoReturn:
    """A real part a test needs is missing: a failure under CI (CI=true), else a skip."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(problem)
    pytest.skip(problem)


def required(find: Callable[[], T]) -> T:
    """What ``find`` returns: a built program's path (player.peers, player.manifests); one
    not built is missing()."""
    try:
        return find()
    except MissingBinary as exc:
        missing(str(exc))


@pytest.fixture(autouse=True)
def clean_agent_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No AGENT_* / POD_* variables leak from the shell into a test."""
    for key in list(os.environ):
        if key.startswith(("AGENT_", "POD_")):
            monkeypatch.delenv(key)
    yield


def pytest_configure(config: pytest.Config) -> None:
    """Parallel workers (pytest-xdist) each get a block of loopback subnets of their own,
    so that the real stores' fixed addresses never meet (player.stores.base.loopback)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")  # "gw0", "gw1", ...
    if worker is not None:
        os.environ["STS_AGENT_LOOPBACK_BLOCK"] = worker.removeprefix("gw")
