"""player.wait: a check failing is "not yet" until the deadline, but GiveUp ends the wait;
the default pace is the one polling_every() sets."""

from __future__ import annotations

import time

import pytest

from player.wait import GiveUp, WaitTimeout, polling_every, wait_until


def test_a_failing_check_is_not_yet_and_is_reported_at_the_deadline() -> None:
    def check() -> bool:
        raise RuntimeError("not listening")

    with pytest.raises(WaitTimeout, match="waiting for the port; last: RuntimeError: "
                                          "not listening"):
        wait_until(check, what="the port", timeout=0.2, interval=0.01)


def test_give_up_ends_the_wait_at_once() -> None:
    calls = []

    def check() -> bool:
        calls.append(time.monotonic())
        raise GiveUp("the kubelet exited")

    with pytest.raises(GiveUp, match="the kubelet exited"):
        wait_until(check, what="the node Ready", timeout=60, interval=0.01)
    assert len(calls) == 1


def test_the_first_value_that_holds_is_returned() -> None:
    answers = iter([None, False, "ready"])
    assert wait_until(lambda: next(answers), what="an answer", timeout=5,
                      interval=0.01) == "ready"


def pauses(monkeypatch: pytest.MonkeyPatch, **interval: float) -> list[float]:
    """The pauses of a wait whose check holds at its third call."""
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    answers = iter([False, False, True])
    wait_until(lambda: next(answers), what="the third call", timeout=5, **interval)
    return slept


def test_polling_every_sets_the_default_pace_inside_only(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert pauses(monkeypatch) == [0.05, 0.05]
    with polling_every(0.25):
        assert pauses(monkeypatch) == [0.25, 0.25]
        assert pauses(monkeypatch, interval=0.01) == [0.01, 0.01]  # a wait's own wins
    assert pauses(monkeypatch) == [0.05, 0.05]
    with pytest.raises(RuntimeError), polling_every(1.0):
        raise RuntimeError("a test failing inside")
    assert pauses(monkeypatch) == [0.05, 0.05]
