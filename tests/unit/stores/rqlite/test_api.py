"""rqlite backend: /status and /nodes (ver=2 and legacy) as rqlite 8.36 and 8.43 answer them."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import respx

from agent.errors import BackendError, BackendUnavailable
from agent.stores.rqlite.api import RqliteBackend, build_view, parse_nodes, parse_status

# Trimmed from a real rqlite v8.36.0 node (rqlite-1, follower) in a 3-node cluster.
STATUS: dict[str, Any] = {
    "build": {"version": "v8.36.0", "compiler_toolchain": "gc"},
    "node": {"uptime": "5.07s"},
    "store": {
        "addr": "127.0.30.2:4002",
        "node_id": "rqlite-1",
        "leader": {"addr": "127.0.30.1:4002", "node_id": "rqlite-0"},
        "nodes": [
            {"id": "rqlite-0", "addr": "127.0.30.1:4002", "suffrage": "Voter"},
            {"id": "rqlite-1", "addr": "127.0.30.2:4002", "suffrage": "Voter"},
            {"id": "rqlite-3", "addr": "127.0.30.4:4002", "suffrage": "Nonvoter"},
        ],
        "raft": {"applied_index": 1200, "commit_index": 1203, "state": "Follower",
                 "voter": True, "last_log_index": 1203},
    },
}
NODES_V2: dict[str, Any] = {"nodes": [
    {"id": "rqlite-1", "api_addr": "http://127.0.30.2:4001", "addr": "127.0.30.2:4002",
     "voter": True, "reachable": True, "leader": False, "time": 1.6e-7},
    {"id": "rqlite-0", "api_addr": "http://127.0.30.1:4001", "addr": "127.0.30.1:4002",
     "voter": True, "reachable": True, "leader": True, "time": 3.3e-7},
    {"id": "rqlite-3", "api_addr": "http://127.0.30.4:4001", "addr": "127.0.30.4:4002",
     "voter": False, "reachable": False, "leader": False, "error": "timeout"},
]}
NODES_LEGACY: dict[str, Any] = {
    "rqlite-0": {"api_addr": "http://127.0.30.1:4001", "addr": "127.0.30.1:4002",
                 "reachable": True, "leader": True},
    "rqlite-1": {"id": "rqlite-1", "api_addr": "http://127.0.30.2:4001",
                 "addr": "127.0.30.2:4002", "voter": True, "reachable": True},
}


def test_parse_nodes_v2() -> None:
    members = parse_nodes(NODES_V2)
    assert [(m.id, m.voter, m.reachable, m.api_url) for m in members] == [
        ("rqlite-0", True, True, "http://127.0.30.1:4001"),
        ("rqlite-1", True, True, "http://127.0.30.2:4001"),
        ("rqlite-3", False, False, "http://127.0.30.4:4001"),
    ]


def test_parse_nodes_legacy_shape() -> None:
    members = parse_nodes(NODES_LEGACY)
    assert [(m.id, m.voter, m.address) for m in members] == [
        ("rqlite-0", True, "127.0.30.1:4002"), ("rqlite-1", True, "127.0.30.2:4002")]


def test_build_view() -> None:
    view = build_view(STATUS, NODES_V2)
    assert view.self_id == "rqlite-1"
    assert view.leader_id == "rqlite-0"
    assert (view.applied_index, view.commit_index) == (1200, 1203)
    assert view.version == "v8.36.0"
    assert [m.id for m in view.voters] == ["rqlite-0", "rqlite-1"]


# Trimmed from a real rqlite v8.43.4 node (rqlite-0, follower): /nodes adds each node's
# "version" and "time_s", /status many store keys the agent does not read.
STATUS_843: dict[str, Any] = {
    "build": {"version": "v8.43.4", "compiler": "gc"},
    "store": {
        "addr": "127.0.30.1:4002", "node_id": "rqlite-0", "ready": True, "observer": {},
        "leader": {"addr": "127.0.30.2:4002", "node_id": "rqlite-1"},
        "nodes": [{"id": "rqlite-0", "addr": "127.0.30.1:4002", "suffrage": "Voter"},
                  {"id": "rqlite-1", "addr": "127.0.30.2:4002", "suffrage": "Voter"},
                  {"id": "rqlite-2", "addr": "127.0.30.3:4002", "suffrage": "Voter"}],
        "raft": {"applied_index": 5, "commit_index": 5, "state": "Follower", "voter": True,
                 "last_log_index": 5, "latest_configuration_index": 3, "num_peers": "2"},
    },
}
NODES_V2_843: dict[str, Any] = {"nodes": [
    {"id": f"rqlite-{i}", "api_addr": f"http://127.0.30.{i + 1}:4001",
     "addr": f"127.0.30.{i + 1}:4002", "version": "v8.43.4", "voter": True,
     "reachable": True, "leader": i == 1, "time": 4e-08, "time_s": "190ns"}
    for i in range(3)]}


def test_build_view_843() -> None:
    view = build_view(STATUS_843, NODES_V2_843)
    assert (view.self_id, view.leader_id, view.version) == ("rqlite-0", "rqlite-1", "v8.43.4")
    assert [m.id for m in view.voters] == ["rqlite-0", "rqlite-1", "rqlite-2"]
    assert view.leader is not None and view.leader.api_url == "http://127.0.30.2:4001"


def test_view_from_status_configuration_alone() -> None:
    view = build_view(STATUS, None)
    assert [(m.id, m.voter) for m in view.members] == [
        ("rqlite-0", True), ("rqlite-1", True), ("rqlite-3", False)]


def test_no_leader() -> None:
    status = {**STATUS, "store": {**STATUS["store"], "leader": {"addr": "", "node_id": ""}}}
    assert parse_status(status)["leader_id"] is None


@pytest.mark.parametrize(
    ("status", "nodes", "message"),
    [
        ({}, NODES_V2, "missing field 'store'"),
        ({"store": {"raft": {}}}, NODES_V2, "missing field 'node_id'"),
        ({"store": {"node_id": "a", "raft": {"applied_index": "x", "commit_index": 1}}},
         NODES_V2, "expected an integer"),
        (STATUS, [], "expected an object"),
        (STATUS, {"nodes": [{"addr": "x"}]}, "no id"),
        (STATUS, {"n1": "garbage"}, "expected an object"),
    ],
)
def test_garbage_is_a_backend_error(status: Any, nodes: Any, message: str) -> None:
    with pytest.raises(BackendError, match=message):
        build_view(status, nodes)


URL = "http://rqlite-1:4001"


@respx.mock
async def test_view_requests_and_node_probe_budget() -> None:
    respx.get(f"{URL}/status").respond(json=STATUS)
    nodes = respx.get(url__startswith=f"{URL}/nodes").respond(json=NODES_V2)
    async with httpx.AsyncClient(timeout=2.0) as client:
        view = await RqliteBackend(client, URL).view()
    assert view.self_id == "rqlite-1"
    query = nodes.calls.last.request.url.query.decode()
    assert "nonvoters" in query and "ver=2" in query and "timeout=1000ms" in query


@respx.mock
async def test_unavailable_and_garbage() -> None:
    respx.get(f"{URL}/status").mock(side_effect=httpx.ConnectError("refused"))
    respx.get(url__startswith=f"{URL}/nodes").respond(json=NODES_V2)
    async with httpx.AsyncClient() as client:
        with pytest.raises(BackendUnavailable):
            await RqliteBackend(client, URL).view()
    respx.get(f"{URL}/status").respond(200, text="not json")
    async with httpx.AsyncClient() as client:
        with pytest.raises(BackendError, match="not JSON"):
            await RqliteBackend(client, URL).view()


@respx.mock
async def test_transfer_leadership_waits_on_the_leader() -> None:
    route = respx.post(f"{URL}/leader").respond(200)
    async with httpx.AsyncClient() as client:
        await RqliteBackend(client, URL).transfer_leadership(leader_url=URL,
                                                             target_id="rqlite-0")
    request = route.calls.last.request
    assert request.url.query == b"wait"
    assert request.headers["content-type"] == "application/json"  # else rqlite ignores it
    assert request.content == b'{"id":"rqlite-0"}'


@pytest.mark.parametrize(("status", "error", "match"), [
    (401, BackendError, "'leader-ops' permission"),
    (405, BackendError, "8.43 or later"),
    (503, BackendUnavailable, "refused moving leadership to rqlite-0: HTTP 503"),
])
@respx.mock
async def test_transfer_leadership_refusals(status: int, error: type[Exception],
                                            match: str) -> None:
    respx.post(f"{URL}/leader").respond(status, text="leader not found")
    async with httpx.AsyncClient() as client:
        with pytest.raises(error, match=match):
            await RqliteBackend(client, URL).transfer_leadership(leader_url=URL,
                                                                 target_id="rqlite-0")


def test_configuration_index_is_read_when_rqlite_gives_it() -> None:
    assert parse_status(STATUS_843)["configuration_index"] == 3
    assert parse_status(STATUS)["configuration_index"] is None  # rqlite 8.36 omits it
    raft = {**STATUS_843["store"]["raft"], "latest_configuration_index": "x"}
    with pytest.raises(BackendError, match="latest_configuration_index"):
        parse_status({**STATUS_843, "store": {**STATUS_843["store"], "raft": raft}})


@respx.mock
@pytest.mark.parametrize(("latest", "commit", "pending"), [
    (3, 5, False), (5, 5, False), (6, 5, True), (None, 5, False)])
async def test_an_uncommitted_configuration_is_named(latest: int | None, commit: int,
                                                     pending: bool) -> None:
    raft = {**STATUS_843["store"]["raft"], "latest_configuration_index": latest,
            "commit_index": commit}
    respx.get(f"{URL}/status").respond(
        json={**STATUS_843, "store": {**STATUS_843["store"], "raft": raft}})
    async with httpx.AsyncClient() as client:
        why = await RqliteBackend(client, URL).uncommitted_configuration(URL)
    assert (why is not None) == pending
    if pending:
        assert why == "the leader's configuration (index 6) is not committed yet (commit index 5)"


@pytest.mark.parametrize(("node", "started"), [
    ({"start_time": "2026-12-07T05:00:19.123456789Z", "uptime": "1m2s"}, 1796619619.123456),
    ({"start_time": "2026-12-07T06:00:19+01:00"}, 1796619619.0),
    ({"start_time": "yesterday"}, None),  # not a time: no order, no error
    ({}, None),
    ("garbage", None),
])
def test_the_start_of_rqlited_is_read_for_a_hand_off(node: Any, started: float | None) -> None:
    view = build_view({**STATUS, "node": node}, None)
    assert view.started_at == started
    assert build_view(STATUS, None).started_at is None  # before rqlite said it
