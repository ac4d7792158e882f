"""The played kubelet's reads with the node's rights while the node authorizer catches up."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from player.apiclient import ApiError
from player.kubelet import Pod

NOT_YET = ApiError(403, 'persistentvolumeclaims "data-consul-2" is forbidden: User '
                        '"system:node:n" cannot get resource "persistentvolumeclaims": '
                        "no relationship found between node 'n' and this object")


def stub() -> Any:
    notes: list[str] = []
    return SimpleNamespace(terminating=False, notes=notes, _note=notes.append)


def test_a_read_refused_until_the_node_authorizer_sees_the_pod_is_tried_again() -> None:
    pod, answers = stub(), [NOT_YET, NOT_YET, {"kind": "PersistentVolumeClaim"}]

    def call() -> Any:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert Pod._as_node(pod, call, "claim data-consul-2") == {"kind": "PersistentVolumeClaim"}
    assert pod.notes == ["claim data-consul-2: refused 2 times until the node authorizer "
                         "saw the pod"]


@pytest.mark.parametrize("error", [
    ApiError(403, "secrets is forbidden: User cannot get resource"),  # RBAC: for good
    ApiError(404, "not found"),
])
def test_any_other_refusal_is_raised_at_once(error: ApiError) -> None:
    pod, calls = stub(), []

    def call() -> Any:
        calls.append(1)
        raise error

    with pytest.raises(ApiError):
        Pod._as_node(pod, call, "secret s")
    assert calls == [1] and pod.notes == []


def test_a_pod_being_deleted_stops_trying() -> None:
    pod = stub()
    pod.terminating = True

    def call() -> Any:
        raise NOT_YET

    with pytest.raises(ApiError):
        Pod._as_node(pod, call, "claim c")
