"""etcd backend: parsing real 3.4 answers and 3.5 shapes, errors, no httpx leaks."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import respx

from agent.errors import AgentError, BackendError, BackendUnavailable
from agent.stores.etcd.api import EtcdBackend, build_view, parse_members, parse_status

# Answers of a real etcd 3.4.23 member (etcd-1) in a 3-member cluster with a learner added.
MEMBERS_34: dict[str, Any] = {
    "header": {"cluster_id": "17778169144436424473", "member_id": "7881611247539843104",
               "raft_term": "2"},
    "members": [
        {"ID": "2894873590417502950", "name": "etcd-0", "peerURLs": ["http://127.0.20.1:2380"],
         "clientURLs": ["http://127.0.20.1:2379"]},
        {"ID": "7881611247539843104", "name": "etcd-1", "peerURLs": ["http://127.0.20.2:2380"],
         "clientURLs": ["http://127.0.20.2:2379"]},
        {"ID": "14849329609843137448", "peerURLs": ["http://127.0.20.4:2380"],
         "isLearner": True},
    ],
}
STATUS_34: dict[str, Any] = {
    "header": {"cluster_id": "17778169144436424473", "member_id": "7881611247539843104",
               "revision": "1", "raft_term": "2"},
    "version": "3.4.23", "dbSize": "20480", "leader": "2894873590417502950",
    "raftIndex": "412", "raftTerm": "2", "raftAppliedIndex": "410", "dbSizeInUse": "16384",
}


def test_parse_members_34() -> None:
    responder, members = parse_members(MEMBERS_34)
    assert responder == "7881611247539843104"
    assert [(m.name, m.voter, m.api_url) for m in members] == [
        ("etcd-0", True, "http://127.0.20.1:2379"),
        ("etcd-1", True, "http://127.0.20.2:2379"),
        ("", False, None),  # added learner that has not started yet
    ]
    assert members[2].address == "http://127.0.20.4:2380"


def test_build_view() -> None:
    view = build_view(MEMBERS_34, STATUS_34)
    assert view.self_id == "7881611247539843104"
    assert view.leader_id == "2894873590417502950"
    assert view.leader is not None and view.leader.name == "etcd-0"
    assert (view.applied_index, view.commit_index, view.lag) == (410, 412, 2)
    assert view.version == "3.4.23"
    assert len(view.voters) == 2


def test_status_shapes_35_numbers_and_no_leader() -> None:
    status = parse_status({"leader": 0, "raftIndex": 9, "raftAppliedIndex": 9,
                           "isLearner": False, "errors": ["NOSPACE"], "version": "3.5.17"})
    assert status["leader_id"] is None
    assert status["commit_index"] == 9 and status["applied_index"] == 9
    assert build_view(MEMBERS_34, {"leader": "0", "raftIndex": "1",
                                   "errors": ["NOSPACE"]}).notes == ("etcd reports: NOSPACE",)


def test_gateway_omits_zero_values() -> None:
    """etcd's JSON gateway leaves zero fields out: a leaderless member has no "leader"."""
    view = build_view(MEMBERS_34, {"header": STATUS_34["header"], "raftIndex": "7"})
    assert view.leader_id is None and view.commit_index == 7


def test_status_without_applied_index() -> None:
    assert parse_status({"leader": "5", "raftIndex": "7"})["applied_index"] is None


@pytest.mark.parametrize(
    ("members", "status", "message"),
    [
        ({}, STATUS_34, "missing field 'header'"),
        ({"header": {"member_id": "x1"}, "members": []}, STATUS_34, "expected an integer"),
        ({**MEMBERS_34, "members": {"a": 1}}, STATUS_34, "field 'members' has type dict"),
        ({**MEMBERS_34, "members": [{"name": "x"}]}, STATUS_34, "missing field 'ID'"),
        ({**MEMBERS_34, "members": [{"ID": "1", "peerURLs": "x"}]}, STATUS_34, "must be lists"),
        (MEMBERS_34, {"leader": "1", "raftIndex": "x"}, "expected an integer"),
        (MEMBERS_34, {"leader": True, "raftIndex": "1"}, "expected an integer"),
        (MEMBERS_34, [], "expected an object"),
    ],
)
def test_garbage_is_a_backend_error(members: Any, status: Any, message: str) -> None:
    with pytest.raises(BackendError, match=message):
        build_view(members, status)


URL = "http://etcd-1:2379"


@respx.mock
async def test_view_posts_to_the_gateway() -> None:
    members = respx.post(f"{URL}/v3/cluster/member/list").respond(json=MEMBERS_34)
    status = respx.post(f"{URL}/v3/maintenance/status").respond(json=STATUS_34)
    async with httpx.AsyncClient() as client:
        view = await EtcdBackend(client, URL + "/").view()
    assert members.called and status.called
    assert view.self_id == "7881611247539843104"


@respx.mock
async def test_view_of_another_member() -> None:
    other = "http://127.0.20.1:2379"
    respx.post(f"{other}/v3/cluster/member/list").respond(json=MEMBERS_34)
    route = respx.post(f"{other}/v3/maintenance/status").respond(json=STATUS_34)
    async with httpx.AsyncClient() as client:
        await EtcdBackend(client, URL).view(other)
    assert route.called


@pytest.mark.parametrize(
    ("response", "error", "message"),
    [
        (httpx.Response(503, text="etcdserver: unhealthy"), BackendUnavailable, "HTTP 503"),
        (httpx.Response(404, json={"error": "nope"}), BackendError, "HTTP 404"),
        (httpx.Response(200, text="<html>"), BackendError, "not JSON"),
        (httpx.Response(200, text='{"header": {'), BackendError, "not JSON"),
        (httpx.ConnectError("refused"), BackendUnavailable, "ConnectError"),
        (httpx.ReadTimeout("slow"), BackendUnavailable, "timed out"),
        (httpx.RemoteProtocolError("truncated"), BackendUnavailable, "RemoteProtocolError"),
    ],
)
@respx.mock
async def test_failures_become_agent_errors(response: Any, error: type[AgentError],
                                            message: str) -> None:
    respx.post(f"{URL}/v3/cluster/member/list").mock(
        side_effect=response if isinstance(response, Exception) else None,
        return_value=response if isinstance(response, httpx.Response) else None,
    )
    respx.post(f"{URL}/v3/maintenance/status").respond(json=STATUS_34)
    async with httpx.AsyncClient() as client:
        with pytest.raises(error, match=message):
            await EtcdBackend(client, URL).view()


@respx.mock
async def test_add_learner_and_retried_add() -> None:
    added = {"header": MEMBERS_34["header"],
             "member": {"ID": "99", "peerURLs": ["http://etcd-3:2380"], "isLearner": True},
             "members": MEMBERS_34["members"]}
    route = respx.post(f"{URL}/v3/cluster/member/add").respond(json=added)
    async with httpx.AsyncClient() as client:
        member = await EtcdBackend(client, URL).add_learner("http://etcd-3:2380", via=URL)
    assert (member.id, member.voter, member.address) == ("99", False, "http://etcd-3:2380")
    assert route.calls.last.request.content == b'{"peerURLs":["http://etcd-3:2380"],"isLearner":true}'
    # etcd 3.4 answers a repeated add with "member ID already exist": reuse the entry.
    route.respond(412, json={"error": "etcdserver: member ID already exist", "code": 9})
    listed = {**MEMBERS_34, "members": [*MEMBERS_34["members"],
                                        {"ID": "99", "peerURLs": ["http://etcd-3:2380"],
                                         "isLearner": True}]}
    respx.post(f"{URL}/v3/cluster/member/list").respond(json=listed)
    async with httpx.AsyncClient() as client:
        again = await EtcdBackend(client, URL).add_learner("http://etcd-3:2380", via=URL)
    assert again.id == "99"


@respx.mock
async def test_promote_retryable_until_in_sync() -> None:
    route = respx.post(f"{URL}/v3/cluster/member/promote").respond(
        412, json={"error": "etcdserver: can only promote a learner member which is in sync "
                            "with leader"})
    async with httpx.AsyncClient() as client:
        backend = EtcdBackend(client, URL)
        with pytest.raises(BackendUnavailable, match="in sync"):
            await backend.promote("99", via=URL)
        route.respond(200, json={"header": {}})
        await backend.promote("99", via=URL)


@respx.mock
async def test_learner_view_without_member_list() -> None:
    respx.post(f"{URL}/v3/cluster/member/list").respond(
        503, json={"error": "etcdserver: rpc not supported for learner", "code": 14})
    respx.post(f"{URL}/v3/maintenance/status").respond(
        json={**STATUS_34, "isLearner": True})
    async with httpx.AsyncClient() as client:
        view = await EtcdBackend(client, URL).view()
    assert view.members == () and view.self_id == "7881611247539843104"
    assert view.leader_id == "2894873590417502950"
    # A voter's 503 on member/list stays an error.
    respx.post(f"{URL}/v3/maintenance/status").respond(json=STATUS_34)
    async with httpx.AsyncClient() as client:
        with pytest.raises(BackendUnavailable):
            await EtcdBackend(client, URL).view()
