"""The writer's ready-pod addresses: asked at most once per max_age, errors not hidden."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from player.writer import Endpoints


def test_the_list_is_asked_again_only_once_it_is_max_age_old(
        monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    asked: list[float] = []
    answers: Iterator[list[str] | Exception] = iter(
        [["http://a"], RuntimeError("API server down"), ["http://b"]])

    def urls() -> list[str]:
        asked.append(now[0])
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    endpoints = Endpoints(urls, max_age=0.5)
    assert endpoints() == ["http://a"]
    now[0] = 100.4
    assert endpoints() == ["http://a"]  # not asked: 0.4 s old
    now[0] = 100.5
    with pytest.raises(RuntimeError, match="API server down"):
        endpoints()
    assert endpoints() == ["http://b"]  # a failed ask is asked again at the next call
    endpoints().append("http://c")  # a copy: the caller cannot change the list
    assert endpoints() == ["http://b"]
    assert asked == [100.0, 100.5, 100.5]
