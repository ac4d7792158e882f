"""Polling with a deadline for the player and the tests: always says what it waited for."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """A condition did not hold in time; the message names it and the last observation."""


class GiveUp(AssertionError):
    """Raised by a check when its condition can no longer hold (a component it needs has
    exited): the wait ends at once with it instead of at its deadline."""


def wait_until(
    check: Callable[[], T | None],
    *,
    what: str,
    timeout: float,
    interval: float = 0.05,
) -> T:
    """Call ``check`` until it returns something other than None/False; return that.

    Exceptions from ``check`` count as "not yet" and the last one is reported, but for
    GiveUp, which ends the wait at once.
    """
    deadline = time.monotonic() + timeout
    last: object = "never checked"
    while True:
        try:
            value = check()
            if value is not None and value is not False:
                return value
            last = value
        except GiveUp:
            raise
        except Exception as exc:  # the condition's probe failing is part of "not yet"
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout}s waiting for {what}; last: {last}")
        time.sleep(interval)  # poll interval of the deadline loop
