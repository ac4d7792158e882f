"""The one retry helper: poll a condition with jittered backoff until a deadline."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

import structlog

from agent.errors import DeadlineExceeded

T = TypeVar("T")
log = structlog.get_logger("agent.retry")


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with full-range jitter around each step."""

    initial_seconds: float = 0.2
    maximum_seconds: float = 2.0
    multiplier: float = 2.0
    jitter: float = 0.25  # each delay is scaled by a factor in [1-jitter, 1+jitter]

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        """Endless delays: initial, initial*multiplier, ... capped at maximum, jittered."""
        pick = (rng or random.Random()).uniform
        delay = self.initial_seconds
        while True:
            yield max(0.0, delay * pick(1 - self.jitter, 1 + self.jitter))
            delay = min(self.maximum_seconds, delay * self.multiplier)


@dataclass(frozen=True, slots=True)
class Done(Generic[T]):
    """The condition holds; ``value`` is the result."""

    value: T


@dataclass(frozen=True, slots=True)
class Pending:
    """The condition does not hold yet; ``reason`` says what is missing."""

    reason: str


Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]


async def poll(
    attempt: Callable[[], Awaitable[Done[T] | Pending]],
    *,
    what: str,
    timeout_seconds: float,
    backoff: Backoff | None = None,
    sleep: Sleep = asyncio.sleep,
    clock: Clock = time.monotonic,
    rng: random.Random | None = None,
) -> T:
    """Call ``attempt`` until it returns Done, or raise DeadlineExceeded naming ``what``.

    Every Pending attempt is logged with its reason, so a stuck init container says
    what it is waiting for. The last sleep is cut short to end at the deadline, and
    one final attempt is made there.
    """
    started = clock()
    deadline = started + timeout_seconds
    delays = (backoff or Backoff()).delays(rng)
    number = 0
    while True:
        number += 1
        outcome = await attempt()
        if isinstance(outcome, Done):
            if number > 1:
                log.info("wait_done", what=what, attempts=number,
                         waited_s=round(clock() - started, 3))
            return outcome.value
        remaining = deadline - clock()
        log.info("waiting", what=what, attempt=number, missing=outcome.reason,
                 remaining_s=round(max(0.0, remaining), 1))
        if remaining <= 0:
            raise DeadlineExceeded(what, waited_seconds=clock() - started,
                                   last_reason=outcome.reason)
        await sleep(min(next(delays), remaining))
