"""Polling with a deadline for the player and the tests: always says what it waited for."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")

# How often wait_until polls when its caller does not say: quick, for checks that ask a
# local process. A tier whose checks are costly sets its own with polling_every().
_interval = 0.05


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
    interval: float | None = None,
) -> T:
    """Call ``check`` every ``interval`` seconds (default: the one polling_every() set)
    until it returns something other than None/False; return that.

    Exceptions from ``check`` count as "not yet" and the last one is reported, but for
    GiveUp, which ends the wait at once.
    """
    pause = _interval if interval is None else interval
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
        time.sleep(pause)  # poll interval of the deadline loop


@contextlib.contextmanager
def polling_every(seconds: float) -> Iterator[None]:
    """Inside: wait_until's default interval is ``seconds`` (for checks that cost the
    host more than a local call, as a list of pods from the API server does)."""
    global _interval
    before, _interval = _interval, seconds
    try:
        yield
    finally:
        _interval = before
