"""The retry helper: backoff bounds, deadline, final attempt, reason in the error."""

from __future__ import annotations

import random

import pytest

from agent.errors import DeadlineExceeded
from agent.retry import Backoff, Done, Pending, poll
from tests.fakes import FakeTime


def test_backoff_grows_caps_and_jitters() -> None:
    backoff = Backoff(initial_seconds=0.1, maximum_seconds=1.0, multiplier=2.0, jitter=0.25)
    delays = backoff.delays(random.Random(7))
    got = [next(delays) for _ in range(10)]
    nominal = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    for value, base in zip(got, nominal, strict=True):
        assert base * 0.75 <= value <= base * 1.25
    assert len(set(got[4:])) > 1, "capped delays are still jittered"


async def test_poll_returns_value_when_done() -> None:
    time = FakeTime()
    outcomes: list[Done[int] | Pending] = [Pending("a"), Pending("b"), Done(42)]
    answers = iter(outcomes)

    async def attempt() -> Done[int] | Pending:
        return next(answers)

    value = await poll(attempt, what="the answer", timeout_seconds=10, sleep=time.sleep,
                       clock=time.clock)
    assert value == 42
    assert len(time.sleeps) == 2


async def test_poll_deadline_names_what_and_last_reason() -> None:
    time = FakeTime()
    calls = 0

    async def attempt() -> Done[int] | Pending:
        nonlocal calls
        calls += 1
        return Pending(f"still missing after {calls}")

    with pytest.raises(DeadlineExceeded) as info:
        await poll(attempt, what="peer db-2", timeout_seconds=5, sleep=time.sleep,
                   clock=time.clock, backoff=Backoff(initial_seconds=1, maximum_seconds=1,
                                                     jitter=0))
    assert info.value.what == "peer db-2"
    assert info.value.last_reason == f"still missing after {calls}"
    assert "gave up waiting for peer db-2 after 5.0s" in info.value.message
    # sleeps never overshoot the deadline, and one last attempt happens at it
    assert sum(time.sleeps) == pytest.approx(5)
    assert calls == 6


async def test_poll_zero_timeout_tries_once() -> None:
    time = FakeTime()
    calls = 0

    async def attempt() -> Done[int] | Pending:
        nonlocal calls
        calls += 1
        return Pending("no")

    with pytest.raises(DeadlineExceeded):
        await poll(attempt, what="x", timeout_seconds=0, sleep=time.sleep, clock=time.clock)
    assert calls == 1 and time.sleeps == []
