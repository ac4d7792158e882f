"""An exec node's view: its own from its hooks, a members answer, a peer's from its agent."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from agent.errors import BackendError
from agent.model import ClusterView, Member
from agent.stores.exec.contract import HookResult, Role
from agent.stores.exec.status import (
    local_view,
    members_view,
    peer_view,
    role_in_status,
    status_check,
)
from tests.unit.stores.exec.answers import MEMBERS


def test_without_members_the_node_is_its_own_authority() -> None:
    view = local_view("exec-1", Role.PRIMARY, check=None, details=(("role", "primary"),))
    assert view.leads and view.member("exec-1") is not None and view.lag == 0
    assert dict(view.checks) == {"exec_status": None}


def test_members_answer_with_agents_as_api_urls() -> None:
    view = members_view(MEMBERS, agent_port=9090)
    assert [m.api_url for m in view.members] == ["http://10.0.0.1:9090", "http://10.0.0.2:9090",
                                                 "http://10.0.0.3:9090"]
    assert view.leader_id == "8e9e05c52164694d" and view.self_id == "91bc3c398fb3c146"
    assert view.lag == 1 and [m.voter for m in view.members] == [True, True, False]
    own = local_view("exec-1", Role.SECONDARY, check=None, details=(), members=view)
    assert own.members == view.members and own.leader_id == view.leader_id


@pytest.mark.parametrize(("change", "named"), [
    ({"members": []}, "'members' must be a non-empty list"),
    ({"leader": "nobody"}, "leader 'nobody' is not among the members"),
    ({"self": None}, "self must be a non-empty string"),
    ({"applied_index": -3}, "applied_index must be a non-negative integer"),
    ({"members": [{"id": "a", "address": "x"}, {"id": "a", "address": "y"}]},
     "member ids repeat"),
    ({"members": [{"id": "a", "address": "x", "voter": "yes"}]}, "voter must be true or false"),
])
def test_a_wrong_members_answer_is_named(change: dict[str, Any], named: str) -> None:
    document = {**copy.deepcopy(MEMBERS), **change}
    with pytest.raises(BackendError, match=named):
        members_view(document, agent_port=9090)


def test_a_stopped_or_failed_node_says_why() -> None:
    failed = HookResult("status", ("/check.sh",), 1, "", "not in the Primary component", 0.1)
    assert status_check(Role.PRIMARY, failed, 0, 3) is None
    assert status_check(Role.STOPPED, None, 0, 3) == "store stopped (status hook exited 7)"
    why = status_check(Role.FAILED, failed, 3, 3)
    assert why is not None and "not in the Primary component" in why and "3 runs" in why


def test_a_peer_s_view_round_trips_through_its_status() -> None:
    view = ClusterView(members=(Member("exec-0", "exec-0", "exec-0", reachable=True),),
                       leader_id="exec-0", self_id="exec-0", applied_index=0, commit_index=0,
                       checks=(("exec_status", None),), details=(("role", "primary"),))
    document = {"view": {"local": view.as_dict()}}
    again = peer_view(document, "http://p:9090")
    assert again.members == view.members and again.leads
    assert role_in_status(document) is Role.PRIMARY


@pytest.mark.parametrize("document", [None, {}, {"view": {"local": None}}, {"view": []},
                                      {"view": {"local": {"members": [{}]}}}])
def test_a_peer_without_a_view_is_an_error_naming_it(document: Any) -> None:
    with pytest.raises(BackendError, match="http://p:9090"):
        peer_view(document, "http://p:9090")
    assert role_in_status(document) is None
