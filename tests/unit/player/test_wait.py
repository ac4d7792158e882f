"""player.wait: a check failing is "not yet" until the deadline, but GiveUp ends the wait."""

from __future__ import annotations

import time

import pytest

from player.wait import GiveUp, WaitTimeout, wait_until


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
