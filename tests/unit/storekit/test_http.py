"""What the store adapters share over HTTP: how a store's answer to a change is read."""

from __future__ import annotations

import httpx
import pytest

from agent.errors import BackendError, BackendUnavailable
from agent.storekit.http import answered


def test_a_200_is_taken() -> None:
    answered(httpx.Response(200, text="ok"), "etcd", "removing 1")


@pytest.mark.parametrize(("needs", "message"), [
    (None, "etcd denied removing 1: HTTP 403: etcdserver: permission denied"),
    ("the agent's user needs the root role",
     "etcd denied removing 1: HTTP 403 (the agent's user needs the root role)"),
])
def test_a_denial_is_for_good_and_says_what_is_needed(needs: str | None,
                                                      message: str) -> None:
    response = httpx.Response(403, text="etcdserver: permission denied")
    with pytest.raises(BackendError) as raised:
        answered(response, "etcd", "removing 1", needs=needs)
    assert str(raised.value) == message


@pytest.mark.parametrize("status", [400, 404, 429, 500, 503])
def test_any_other_answer_is_worth_retrying_and_named(status: int) -> None:
    response = httpx.Response(status, text="x" * 290 + "no leader, the tail cut")
    with pytest.raises(BackendUnavailable) as raised:
        answered(response, "rqlite", "removing 2", needs="unused for a refusal")
    assert str(raised.value) == f"rqlite refused removing 2: HTTP {status}: " \
                                + "x" * 290 + "no leader,"
