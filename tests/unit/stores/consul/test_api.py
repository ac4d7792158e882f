"""consul backend: agent/self, raft configuration and autopilot health as Consul 1.22 answers."""

from __future__ import annotations

import asyncio
import copy
import re
from typing import Any

import httpx
import pytest
import respx

from agent.errors import AgentError, BackendError, BackendUnavailable
from agent.model import Member, Snapshot
from agent.stores.consul.api import (
    LEAVE_TIMEOUT_SECONDS,
    REJOIN_SECONDS,
    ConsulBackend,
    Moved,
    build_view,
    moved,
    parse_configuration,
    parse_health,
)

ID0 = "8f2d6a1e-3c4b-4f0e-9a7d-1b2c3d4e5f60"  # consul-0, the leader
ID1 = "b7e1c2d3-5a6f-4e8d-8c9b-0a1b2c3d4e5f"  # consul-1, this pod's server
ID2 = "2c9e4f6a-7b8d-4a0c-9e1f-3d5b7a9c1e2f"  # consul-2, joined, not yet a voter

# Trimmed from a Consul 1.22.2 server (consul-1, follower) in a 3-server cluster.
AGENT_SELF: dict[str, Any] = {
    "Config": {"Datacenter": "dc1", "PrimaryDatacenter": "dc1", "NodeName": "consul-1",
               "NodeID": ID1, "Partition": "", "Revision": "5b4a2c1d", "Server": True,
               "Version": "1.22.2", "BuildDate": "2025-12-10T12:00:00Z"},
    "Coord": {"Vec": [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], "Error": 1.5,
              "Adjustment": 0, "Height": 1e-05},
    "Member": {"Name": "consul-1", "Addr": "10.0.0.2", "Port": 8301,
               "Tags": {"role": "consul", "dc": "dc1", "id": ID1, "port": "8300",
                        "raft_vsn": "3", "build": "1.22.2:5b4a2c1d", "vsn": "2"},
               "Status": 1, "ProtocolMin": 1, "ProtocolMax": 5, "ProtocolCur": 2,
               "DelegateMin": 2, "DelegateMax": 5, "DelegateCur": 4},
    "Stats": {"raft": {"state": "Follower", "applied_index": "1500", "commit_index": "1500",
                       "last_log_index": "1500", "num_peers": "1"}},
    "Meta": {"consul-network-segment": "", "consul-version": "1.22.2"},
}
# Listed out of name order on purpose: the view sorts by name.
CONFIGURATION: dict[str, Any] = {
    "Servers": [
        {"ID": ID2, "Node": "consul-2", "Address": "10.0.0.3:8300", "Leader": False,
         "Voter": False, "ProtocolVersion": "3", "LastIndex": 1503},
        {"ID": ID0, "Node": "consul-0", "Address": "10.0.0.1:8300", "Leader": True,
         "Voter": True, "ProtocolVersion": "3", "LastIndex": 1503},
        {"ID": ID1, "Node": "consul-1", "Address": "10.0.0.2:8300", "Leader": False,
         "Voter": True, "ProtocolVersion": "3", "LastIndex": 1503},
    ],
    "Index": 1503,
}


def _health_server(node_id: str, name: str, address: str, *, leader: bool, last_index: int,
                   healthy: bool, voter: bool, serf: str = "alive") -> dict[str, Any]:
    return {"ID": node_id, "Name": name, "Address": address, "SerfStatus": serf,
            "Version": "1.22.2", "Leader": leader, "LastContact": "0s" if leader else "12.5ms",
            "LastTerm": 3, "LastIndex": last_index, "Healthy": healthy, "Voter": voter,
            "StableSince": "2026-01-05T09:14:02Z"}


# What the leader answers (HTTP 429) while consul-2 is failed: 1200 is where it stopped.
HEALTH_UNHEALTHY: dict[str, Any] = {
    "Healthy": False,
    "FailureTolerance": 0,
    "Servers": [
        _health_server(ID0, "consul-0", "10.0.0.1:8300", leader=True, last_index=1503,
                       healthy=True, voter=True),
        _health_server(ID1, "consul-1", "10.0.0.2:8300", leader=False, last_index=1500,
                       healthy=True, voter=True),
        _health_server(ID2, "consul-2", "10.0.0.3:8300", leader=False, last_index=1200,
                       healthy=False, voter=False, serf="failed"),
    ],
}
HEALTH_OK: dict[str, Any] = {
    "Healthy": True,
    "FailureTolerance": 0,
    "Servers": [
        _health_server(ID0, "consul-0", "10.0.0.1:8300", leader=True, last_index=1503,
                       healthy=True, voter=True),
        _health_server(ID1, "consul-1", "10.0.0.2:8300", leader=False, last_index=1501,
                       healthy=True, voter=True),
        _health_server(ID2, "consul-2", "10.0.0.3:8300", leader=False, last_index=1503,
                       healthy=True, voter=False),
    ],
}
NO_HEALTH_NOTE = "autopilot health unavailable: catch-up not measured"


def test_parse_configuration() -> None:
    members, leader = parse_configuration(CONFIGURATION, api_port=8500, scheme="http")
    assert leader == ID0
    assert members == (
        Member(ID0, "consul-0", "10.0.0.1:8300", "http://10.0.0.1:8500", True),
        Member(ID1, "consul-1", "10.0.0.2:8300", "http://10.0.0.2:8500", True),
        Member(ID2, "consul-2", "10.0.0.3:8300", "http://10.0.0.3:8500", False),
    )


def test_parse_configuration_without_leader_or_address() -> None:
    servers = [{"ID": ID0, "Node": "consul-0", "Address": "10.0.0.1:8300", "Leader": False,
                "Voter": True},
               {"ID": ID1, "Address": "", "Voter": True}]
    members, leader = parse_configuration({"Servers": servers, "Index": 9}, api_port=8500,
                                          scheme="http")
    assert leader is None
    # No Node name: the id stands in for it (and sorts by it); no address, no API URL.
    assert [(m.name, m.address, m.api_url) for m in members] == [
        (ID1, "", None), ("consul-0", "10.0.0.1:8300", "http://10.0.0.1:8500")]


def test_parse_configuration_ipv6_and_tls() -> None:
    servers = [{"ID": ID0, "Node": "consul-0", "Address": "[fd00::1]:8300", "Leader": True,
                "Voter": True}]
    members, _ = parse_configuration({"Servers": servers}, api_port=8501, scheme="https")
    assert members[0].api_url == "https://[fd00::1]:8501"


def test_parse_health() -> None:
    assert parse_health(HEALTH_UNHEALTHY) == {
        ID0: (1503, True), ID1: (1500, True), ID2: (1200, False)}
    # Entries without a string ID are skipped, not fatal.
    assert parse_health({"Servers": [{"Name": "x"}, "junk", {"ID": ID0}]}) == {ID0: (0, False)}


def test_build_view() -> None:
    view = build_view(AGENT_SELF, CONFIGURATION, HEALTH_OK, api_port=8500, scheme="http")
    assert view.self_id == ID1
    assert view.leader_id == ID0
    assert view.leader is not None and view.leader.name == "consul-0"
    # Applied: the server's own raft stats (1500), not autopilot's LastIndex for it (1501,
    # the end of its log); commit: the leader's LastIndex.
    assert (view.applied_index, view.commit_index, view.lag) == (1500, 1503, 3)
    assert view.version == "1.22.2"
    assert view.notes == ()
    assert [m.id for m in view.voters] == [ID0, ID1]
    assert [m.reachable for m in view.members] == [True, True, True]


def test_restarted_server_applies_nothing_until_the_leader_reaches_it() -> None:
    """Back with its old log (LastIndex 1501) but nothing applied since the restart."""
    agent_self = copy.deepcopy(AGENT_SELF)
    agent_self["Stats"]["raft"].update(applied_index="0", commit_index="0")
    view = build_view(agent_self, CONFIGURATION, HEALTH_OK, api_port=8500, scheme="http")
    assert (view.applied_index, view.commit_index, view.lag) == (0, 1503, 1503)
    agent_self["Stats"]["raft"] = {"state": "Follower"}  # no figure: autopilot's stands in
    view = build_view(agent_self, CONFIGURATION, HEALTH_OK, api_port=8500, scheme="http")
    assert view.applied_index == 1501


@pytest.mark.parametrize("addr", ["10.0.0.9", "fd00::9"])
def test_server_back_on_a_new_address_is_not_caught_up(addr: str) -> None:
    """The configuration still lists the old address: the leader replicates to nobody."""
    agent_self = copy.deepcopy(AGENT_SELF)
    agent_self["Member"]["Addr"] = addr
    view = build_view(agent_self, CONFIGURATION, HEALTH_OK, api_port=8500, scheme="http")
    own = f"[{addr}]:8300" if ":" in addr else f"{addr}:8300"
    assert view.applied_index is None and view.commit_index == 1503
    assert view.notes == (f"the cluster has this server at 10.0.0.2:8300, it now listens at "
                          f"{own}: the leader cannot replicate to it until Consul updates "
                          "the address",)
    same = build_view(AGENT_SELF, CONFIGURATION, HEALTH_OK, api_port=8500, scheme="http")
    assert same.applied_index == 1500 and same.notes == ()


def test_build_view_unhealthy_server_is_unreachable() -> None:
    view = build_view(AGENT_SELF, CONFIGURATION, HEALTH_UNHEALTHY, api_port=8500,
                      scheme="http")
    assert [(m.name, m.reachable) for m in view.members] == [
        ("consul-0", True), ("consul-1", True), ("consul-2", False)]
    assert (view.applied_index, view.commit_index) == (1500, 1503)


def test_build_view_without_health() -> None:
    view = build_view(AGENT_SELF, CONFIGURATION, None, api_port=8500, scheme="http")
    assert (view.applied_index, view.commit_index, view.lag) == (None, None, None)
    assert view.notes == (NO_HEALTH_NOTE,)
    assert [m.reachable for m in view.members] == [None, None, None]


@pytest.mark.parametrize("health", [{"Healthy": True},
                                    {"Servers": [{"ID": ID0, "LastIndex": "x"}]}])
def test_build_view_with_unreadable_health(health: Any) -> None:
    """Membership still counts; only the catch-up measure is missing, and said so."""
    view = build_view(AGENT_SELF, CONFIGURATION, health, api_port=8500, scheme="http")
    assert (view.applied_index, view.commit_index) == (None, None)
    assert view.notes == ("autopilot health unreadable: catch-up not measured",)
    assert [m.reachable for m in view.members] == [None, None, None]
    assert view.leader_id == ID0


def test_build_view_health_missing_self_or_leader() -> None:
    """A server autopilot does not track yet: membership, but no indexes."""
    health = {**HEALTH_OK, "Servers": HEALTH_OK["Servers"][:1]}  # the leader only
    view = build_view(AGENT_SELF, CONFIGURATION, health, api_port=8500, scheme="http")
    assert (view.applied_index, view.commit_index) == (None, None)
    assert [m.reachable for m in view.members] == [True, None, None]


def test_client_agent_is_refused() -> None:
    agent_self = copy.deepcopy(AGENT_SELF)
    agent_self["Config"]["Server"] = False
    with pytest.raises(BackendError, match="this agent is a client, not a server"):
        build_view(agent_self, CONFIGURATION, HEALTH_OK, api_port=8500, scheme="http")


@pytest.mark.parametrize(
    ("agent_self", "configuration", "health", "message"),
    [
        ({}, CONFIGURATION, HEALTH_OK, "consul agent/self: missing field 'Config'"),
        ([], CONFIGURATION, HEALTH_OK, "consul agent/self: expected an object, got list"),
        ({"Config": None}, CONFIGURATION, HEALTH_OK,
         "consul agent/self: field 'Config' has type NoneType"),
        ({"Config": {"Server": True}}, CONFIGURATION, HEALTH_OK,
         "consul agent/self Config: missing field 'NodeID'"),
        ({"Config": {"NodeID": 7}}, CONFIGURATION, HEALTH_OK,
         "consul agent/self Config: field 'NodeID' has type int"),
        (AGENT_SELF, {"Index": 3}, HEALTH_OK,
         "consul raft configuration: missing field 'Servers'"),
        (AGENT_SELF, {"Servers": None, "Index": 3}, HEALTH_OK,
         "consul raft configuration: field 'Servers' has type NoneType"),
        (AGENT_SELF, "garbage", HEALTH_OK,
         "consul raft configuration: expected an object, got str"),
        (AGENT_SELF, {"Servers": [{"Node": "consul-0", "Address": "10.0.0.1:8300"}]},
         HEALTH_OK, "consul raft configuration: a server without an ID"),
        (AGENT_SELF, {"Servers": [{"ID": "", "Node": "consul-0"}]}, HEALTH_OK,
         "consul raft configuration: a server without an ID"),
        (AGENT_SELF, {"Servers": ["consul-0"]}, HEALTH_OK,
         "consul raft configuration: a server without an ID"),
    ],
)
def test_garbage_is_a_backend_error(agent_self: Any, configuration: Any, health: Any,
                                    message: str) -> None:
    with pytest.raises(BackendError, match=f"^{message}$"):
        build_view(agent_self, configuration, health, api_port=8500, scheme="http")


@pytest.mark.parametrize(
    ("base_url", "scheme", "port"),
    [
        ("http://127.0.0.1:8500", "http", 8500),
        ("http://consul-1.consul:8500/", "http", 8500),
        ("http://consul-1.consul", "http", 8500),
        ("https://consul-1.consul", "https", 8501),
        ("https://consul-1.consul:9501", "https", 9501),
    ],
)
async def test_api_port_and_scheme_from_base_url(base_url: str, scheme: str,
                                                 port: int) -> None:
    async with httpx.AsyncClient() as client:
        backend = ConsulBackend(client, base_url)
    assert (backend.scheme, backend.api_port) == (scheme, port)
    assert not backend.base_url.endswith("/")


URL = "http://consul-1.consul:8500"
LEADER = "http://10.0.0.1:8500"


def _mock_view(base: str, *, health: httpx.Response | Exception,
               agent_self: dict[str, Any] | None = None) -> dict[str, respx.Route]:
    routes = {
        "self": respx.get(f"{base}/v1/agent/self").respond(json=agent_self or AGENT_SELF),
        "configuration": respx.get(f"{base}/v1/operator/raft/configuration").respond(
            json=CONFIGURATION),
        "health": respx.get(f"{base}/v1/operator/autopilot/health"),
    }
    if isinstance(health, Exception):
        routes["health"].mock(side_effect=health)
    else:
        routes["health"].mock(return_value=health)
    return routes


@respx.mock
async def test_view_healthy_cluster() -> None:
    routes = _mock_view(URL, health=httpx.Response(200, json=HEALTH_OK))
    async with httpx.AsyncClient() as client:
        view = await ConsulBackend(client, URL + "/").view()
    assert all(route.call_count == 1 for route in routes.values())
    # Any server answers the configuration from its own state, leader or not.
    assert routes["configuration"].calls.last.request.url.query == b"stale"
    assert (view.self_id, view.leader_id, view.version) == (ID1, ID0, "1.22.2")
    assert [(m.name, m.api_url, m.voter, m.reachable) for m in view.members] == [
        ("consul-0", "http://10.0.0.1:8500", True, True),
        ("consul-1", "http://10.0.0.2:8500", True, True),
        ("consul-2", "http://10.0.0.3:8500", False, True),
    ]
    assert (view.applied_index, view.commit_index) == (1500, 1503)
    assert view.notes == ()


@respx.mock
async def test_view_uses_the_429_health_body() -> None:
    _mock_view(URL, health=httpx.Response(429, json=HEALTH_UNHEALTHY))
    async with httpx.AsyncClient() as client:
        view = await ConsulBackend(client, URL).view()
    assert (view.applied_index, view.commit_index, view.lag) == (1500, 1503, 3)
    assert [(m.name, m.reachable) for m in view.members] == [
        ("consul-0", True), ("consul-1", True), ("consul-2", False)]
    assert view.notes == ()


@respx.mock
async def test_view_over_tls_guesses_https_api_urls() -> None:
    base = "https://consul-1.consul"
    _mock_view(base, health=httpx.Response(200, json=HEALTH_OK))
    async with httpx.AsyncClient() as client:
        view = await ConsulBackend(client, base).view()
    assert [m.api_url for m in view.members] == [
        "https://10.0.0.1:8501", "https://10.0.0.2:8501", "https://10.0.0.3:8501"]


@respx.mock
async def test_view_of_another_server() -> None:
    other = "http://10.0.0.1:8500"
    leader_self = copy.deepcopy(AGENT_SELF)
    leader_self["Config"].update(NodeID=ID0, NodeName="consul-0")
    leader_self["Member"].update(Name="consul-0", Addr="10.0.0.1")
    leader_self["Stats"]["raft"].update(state="Leader", applied_index="1503",
                                        commit_index="1503", last_log_index="1503")
    routes = _mock_view(other, health=httpx.Response(200, json=HEALTH_OK),
                        agent_self=leader_self)
    async with httpx.AsyncClient() as client:
        view = await ConsulBackend(client, URL).view(other)
    assert all(route.called for route in routes.values())
    assert (view.self_id, view.leader_id) == (ID0, ID0)
    assert (view.applied_index, view.commit_index, view.lag) == (1503, 1503, 0)


@pytest.mark.parametrize(
    "health",
    [
        httpx.Response(500, text="No cluster leader"),
        httpx.Response(403, text="Permission denied: token lacks operator:read"),
        httpx.Response(200, text="<html>"),
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
    ],
    ids=["500-no-leader", "403", "not-json", "refused", "timeout"],
)
@respx.mock
async def test_view_without_health(health: httpx.Response | Exception) -> None:
    """No leader (or no answer) for autopilot: the view stands, without indexes."""
    no_leader = {**CONFIGURATION, "Servers": [{**s, "Leader": False}
                                              for s in CONFIGURATION["Servers"]]}
    _mock_view(URL, health=health)
    respx.get(f"{URL}/v1/operator/raft/configuration").respond(json=no_leader)
    async with httpx.AsyncClient() as client:
        view = await ConsulBackend(client, URL).view()
    assert (view.self_id, view.leader_id) == (ID1, None)
    assert (view.applied_index, view.commit_index) == (None, None)
    assert view.notes == (NO_HEALTH_NOTE,)
    assert [(m.name, m.reachable) for m in view.members] == [
        ("consul-0", None), ("consul-1", None), ("consul-2", None)]


@respx.mock
async def test_view_of_a_client_agent() -> None:
    client_self = copy.deepcopy(AGENT_SELF)
    client_self["Config"]["Server"] = False
    _mock_view(URL, health=httpx.Response(200, json=HEALTH_OK), agent_self=client_self)
    async with httpx.AsyncClient() as client:
        with pytest.raises(BackendError, match="client, not a server"):
            await ConsulBackend(client, URL).view()


@pytest.mark.parametrize(
    ("endpoint", "response", "error", "message"),
    [
        ("agent/self", httpx.Response(500, text="rpc error"), BackendUnavailable,
         r"^consul http://consul-1\.consul:8500/v1/agent/self: HTTP 500$"),
        ("agent/self", httpx.Response(200, text="<html>"), BackendError, "not JSON"),
        ("agent/self", httpx.Response(403, text="Permission denied"), BackendError,
         "HTTP 403: 'Permission denied'"),
        ("agent/self", httpx.ConnectError("refused"), BackendUnavailable,
         "ConnectError: refused"),
        ("operator/raft/configuration", httpx.Response(200, text='{"Servers": ['),
         BackendError, "not JSON"),
        ("operator/raft/configuration", httpx.Response(200, json={"Index": 1}), BackendError,
         "^consul raft configuration: missing field 'Servers'$"),
        ("operator/raft/configuration", httpx.Response(200, json={"Servers": [{"Node": "a"}]}),
         BackendError, "a server without an ID"),
        ("operator/raft/configuration", httpx.Response(503), BackendUnavailable, "HTTP 503"),
        ("operator/raft/configuration", httpx.ReadTimeout("slow"), BackendUnavailable,
         "timed out"),
    ],
)
@respx.mock
async def test_view_failures(endpoint: str, response: httpx.Response | Exception,
                             error: type[AgentError], message: str) -> None:
    _mock_view(URL, health=httpx.Response(200, json=HEALTH_OK))
    route = respx.get(f"{URL}/v1/{endpoint}")
    if isinstance(response, Exception):
        route.mock(side_effect=response)
    else:
        route.mock(return_value=response)
    async with httpx.AsyncClient() as client:
        with pytest.raises(error, match=message):
            await ConsulBackend(client, URL).view()


PEER_URL = f"{LEADER}/v1/operator/raft/peer?id={ID1}"


def _mock_remove(*, agent_self: dict[str, Any] | None = None
                 ) -> tuple[respx.Route, respx.Route]:
    respx.get(f"{URL}/v1/agent/self").respond(json=agent_self or AGENT_SELF)
    leave = respx.put(f"{URL}/v1/agent/leave").respond(200)
    peer = respx.delete(f"{LEADER}/v1/operator/raft/peer").respond(200)
    return leave, peer


@respx.mock
async def test_remove_self_leaves_through_the_local_agent() -> None:
    leave, peer = _mock_remove()
    async with httpx.AsyncClient(timeout=2.0) as client:
        await ConsulBackend(client, URL).remove(ID1, leader_url=LEADER)
    assert leave.call_count == 1
    assert str(leave.calls.last.request.url) == f"{URL}/v1/agent/leave"
    # The agent answers only once it has left: longer than the client's usual timeout.
    assert leave.calls.last.request.extensions["timeout"]["read"] == LEAVE_TIMEOUT_SECONDS
    assert not peer.called


@pytest.mark.parametrize(
    "answer",
    [httpx.Response(500, text="leave failed"), httpx.ConnectError("refused"),
     httpx.RemoteProtocolError("closed"), httpx.ReadTimeout("slow")],
    ids=["500", "refused", "closed", "timeout"],
)
@respx.mock
async def test_remove_self_falls_back_to_the_leader(answer: httpx.Response | Exception
                                                    ) -> None:
    leave, peer = _mock_remove()
    if isinstance(answer, Exception):
        leave.mock(side_effect=answer)
    else:
        leave.mock(return_value=answer)
    async with httpx.AsyncClient() as client:
        await ConsulBackend(client, URL).remove(ID1, leader_url=LEADER + "/")
    assert leave.call_count == 1
    assert peer.call_count == 1
    assert str(peer.calls.last.request.url) == PEER_URL


@pytest.mark.parametrize("status", [401, 403])
@respx.mock
async def test_remove_self_leave_denied(status: int) -> None:
    leave, peer = _mock_remove()
    leave.respond(status, text="Permission denied")
    async with httpx.AsyncClient() as client:
        with pytest.raises(BackendError, match=f"HTTP {status} .*ACL token needs "
                                               "operator:write and agent:write"):
            await ConsulBackend(client, URL).remove(ID1, leader_url=LEADER)
    assert not peer.called


@respx.mock
async def test_remove_another_member_through_the_leader() -> None:
    leave, peer = _mock_remove()
    async with httpx.AsyncClient() as client:
        await ConsulBackend(client, URL).remove(ID2, leader_url=LEADER)
    assert not leave.called
    assert peer.call_count == 1
    assert str(peer.calls.last.request.url) == f"{LEADER}/v1/operator/raft/peer?id={ID2}"


@pytest.mark.parametrize(
    "agent_self",
    [httpx.Response(500), httpx.ConnectError("refused"), httpx.Response(200, text="<html>")],
    ids=["500", "refused", "not-json"],
)
@respx.mock
async def test_remove_when_the_local_agent_is_silent(agent_self: httpx.Response | Exception
                                                     ) -> None:
    """Not known to be local: no leave, straight to the leader."""
    leave, peer = _mock_remove()
    route = respx.get(f"{URL}/v1/agent/self")
    if isinstance(agent_self, Exception):
        route.mock(side_effect=agent_self)
    else:
        route.mock(return_value=agent_self)
    async with httpx.AsyncClient() as client:
        await ConsulBackend(client, URL).remove(ID1, leader_url=LEADER)
    assert not leave.called
    assert str(peer.calls.last.request.url) == PEER_URL


@pytest.mark.parametrize("member", [ID1, ID2], ids=["self", "other"])
@respx.mock
async def test_remove_already_gone_is_success(member: str) -> None:
    leave, peer = _mock_remove()
    leave.respond(500, text="agent: leave failed")
    peer.respond(500, text=f'id "{member}" was not found in the Raft configuration')
    async with httpx.AsyncClient() as client:
        await ConsulBackend(client, URL).remove(member, leader_url=LEADER)
    assert leave.call_count == (1 if member == ID1 else 0)
    assert str(peer.calls.last.request.url) == f"{LEADER}/v1/operator/raft/peer?id={member}"


@pytest.mark.parametrize("status", [401, 403])
@respx.mock
async def test_remove_denied_names_the_acl_token(status: int) -> None:
    _, peer = _mock_remove()
    peer.respond(status, text="Permission denied: token with AccessorID '1' lacks "
                              "permission 'operator:write'")
    async with httpx.AsyncClient() as client:
        with pytest.raises(BackendError) as caught:
            await ConsulBackend(client, URL).remove(ID2, leader_url=LEADER)
    assert caught.value.message == (
        f"consul denied removing {ID2}: HTTP {status} (the agent's ACL token needs "
        "operator:write and agent:write)")


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (httpx.Response(500, text="need at least one voter in configuration"),
         f"^consul refused removing {ID2}: HTTP 500: need at least one voter in "
         "configuration$"),
        (httpx.Response(500, text="No cluster leader"),
         f"^consul refused removing {ID2}: HTTP 500: No cluster leader$"),
        (httpx.Response(400, text="Must specify either ?id with the server's ID or "
                                  "?address with IP:port of peer to remove"),
         f"^consul refused removing {ID2}: HTTP 400: Must specify"),
        (httpx.Response(503, text="x" * 400), f"^consul refused removing {ID2}: HTTP 503: "
                                              f"{'x' * 300}$"),
        (httpx.ConnectError("refused"), "ConnectError: refused"),
        (httpx.ReadTimeout("slow"), "timed out"),
    ],
)
@respx.mock
async def test_remove_failures_are_retryable(answer: httpx.Response | Exception,
                                             message: str) -> None:
    _, peer = _mock_remove()
    if isinstance(answer, Exception):
        peer.mock(side_effect=answer)
    else:
        peer.mock(return_value=answer)
    async with httpx.AsyncClient() as client:
        with pytest.raises(BackendUnavailable, match=message):
            await ConsulBackend(client, URL).remove(ID2, leader_url=LEADER)


@respx.mock
async def test_transfer_leadership() -> None:
    route = respx.post(f"{LEADER}/v1/operator/raft/transfer-leader").respond(
        json={"Success": True})
    async with httpx.AsyncClient() as client:
        backend = ConsulBackend(client, URL)
        assert backend.can_transfer is True
        await backend.transfer_leadership(leader_url=LEADER + "/", target_id=ID1)
    assert route.call_count == 1
    assert str(route.calls.last.request.url) == (
        f"{LEADER}/v1/operator/raft/transfer-leader?id={ID1}")


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (httpx.Response(500, text="cannot find peer"),
         f"^consul refused the leadership transfer to {ID2}: HTTP 500: cannot find peer$"),
        (httpx.Response(404, text="Failed to transfer Leader"),
         f"^consul refused the leadership transfer to {ID2}: HTTP 404: Failed to transfer"),
        (httpx.Response(204), f"^consul refused the leadership transfer to {ID2}: HTTP 204: $"),
        (httpx.ConnectError("refused"), "ConnectError: refused"),
    ],
)
@respx.mock
async def test_transfer_leadership_refused(answer: httpx.Response | Exception,
                                           message: str) -> None:
    route = respx.post(f"{LEADER}/v1/operator/raft/transfer-leader")
    if isinstance(answer, Exception):
        route.mock(side_effect=answer)
    else:
        route.mock(return_value=answer)
    async with httpx.AsyncClient() as client:
        with pytest.raises(BackendUnavailable, match=message):
            await ConsulBackend(client, URL).transfer_leadership(leader_url=LEADER,
                                                                 target_id=ID2)


@respx.mock
async def test_remove_self_returns_once_the_leader_dropped_it() -> None:
    """Consul answers the leave only after its drain (about 13 s in all); the removal
    from the leader's raft configuration, what a scale-down waits for, comes first."""
    leave, peer = _mock_remove()
    answered = asyncio.Event()

    async def slow_leave(request: httpx.Request) -> httpx.Response:
        await answered.wait()
        return httpx.Response(200)

    leave.mock(side_effect=slow_leave)
    servers = [{"ID": ID1, "Node": "consul-1"}, {"ID": "other", "Node": "consul-0"}]
    configuration = respx.get(f"{LEADER}/v1/operator/raft/configuration").mock(
        side_effect=[httpx.Response(200, json={"Servers": servers}),
                     httpx.Response(500, text="no leader"),
                     httpx.Response(200, json={"Servers": [{"Node": "consul-1"}]}),
                     httpx.Response(200, json={"Servers": servers[1:]})])
    async with httpx.AsyncClient() as client:
        backend = ConsulBackend(client, URL)
        await asyncio.wait_for(backend.remove(ID1, leader_url=LEADER), timeout=5)
        # Still in; no answer, then one naming a server without an ID (no word: keep
        # waiting); out.
        assert configuration.call_count == 4
        assert backend._leaving is not None and not backend._leaving.done()
        answered.set()  # the leave goes on in the background and ends by itself
        await asyncio.wait_for(backend._leaving, timeout=5)
    assert leave.call_count == 1 and not peer.called


def _moved_self(addr: str = "10.0.0.9") -> dict[str, Any]:
    """consul-1 back on ``addr``; the raft configuration it holds still has 10.0.0.2."""
    agent_self = copy.deepcopy(AGENT_SELF)
    agent_self["Member"]["Addr"] = addr
    agent_self["Stats"]["raft"]["latest_configuration"] = (
        f"[{{Suffrage:Voter ID:{ID0} Address:10.0.0.1:8300}} "
        f"{{Suffrage:Voter ID:{ID1} Address:10.0.0.2:8300}} "
        f"{{Suffrage:Nonvoter ID:{ID2} Address:10.0.0.3:8300}}]")
    return agent_self


@pytest.mark.parametrize(("change", "found"), [
    ({}, Moved("10.0.0.2:8300", "10.0.0.9:8300", ("10.0.0.3:8301", "10.0.0.1:8301"))),
    ({"addr": "fd00::9"}, Moved("10.0.0.2:8300", "[fd00::9]:8300",
                                ("10.0.0.3:8301", "10.0.0.1:8301"))),
    ({"port": 9301}, Moved("10.0.0.2:8300", "10.0.0.9:8300",
                           ("10.0.0.3:9301", "10.0.0.1:9301"))),
    ({"addr": "10.0.0.2"}, None),  # listed where it listens
    ({"port": "8301"}, None),  # malformed: no guess
    ({"configuration": "[]"}, None),  # not in the configuration it holds
    ({"configuration": None}, None),  # no configuration in the stats
])
def test_moved(change: dict[str, Any], found: Moved | None) -> None:
    agent_self = _moved_self(change.get("addr", "10.0.0.9"))
    if "port" in change:
        agent_self["Member"]["Port"] = change["port"]
    if "configuration" in change:
        agent_self["Stats"]["raft"]["latest_configuration"] = change["configuration"]
    assert moved(agent_self) == found


@respx.mock
async def test_a_server_back_on_a_new_address_joins_the_others_again() -> None:
    """Consul keeps a failed node's old address for DeadNodeReclaimTime and the first
    join after a restart counts as a success: the sidecar joins the other servers again
    every REJOIN_SECONDS until the configuration lists the new address. Its view says
    why without waiting for the configuration or health, which a moved server answers
    only after Consul's RPC hold timeout."""
    routes = _mock_view(URL, health=httpx.Response(200, json=HEALTH_OK),
                        agent_self=_moved_self())

    async def held(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(30)
        return httpx.Response(500, text="No cluster leader")

    routes["configuration"].mock(side_effect=held)
    routes["health"].mock(side_effect=held)
    joins = [respx.put(f"{URL}/v1/agent/join/{host}:8301").respond(200)
             for host in ("10.0.0.1", "10.0.0.3")]
    clock = [1000.0]
    async with httpx.AsyncClient() as client:
        backend = ConsulBackend(client, URL)
        backend.clock = lambda: clock[0]
        await backend.mend(Snapshot(), None)
        assert not any(j.called for j in joins)  # no view yet: nothing known to mend
        with pytest.raises(BackendUnavailable, match="^" + re.escape(
                "the cluster has this server at 10.0.0.2:8300, it now listens at "
                "10.0.0.9:8300: joining 10.0.0.3:8301, 10.0.0.1:8301 again")):
            await asyncio.wait_for(backend.view(), timeout=5)
        await backend.mend(Snapshot(), None)
        await backend.mend(Snapshot(), None)  # within REJOIN_SECONDS: once
        assert [j.call_count for j in joins] == [1, 1]
        clock[0] += REJOIN_SECONDS
        await backend.mend(Snapshot(), None)
        assert [j.call_count for j in joins] == [2, 2]
        _mock_view(LEADER, health=httpx.Response(200, json=HEALTH_OK))
        await backend.view(LEADER)  # another server's view changes nothing
        clock[0] += REJOIN_SECONDS
        await backend.mend(Snapshot(), None)
        assert [j.call_count for j in joins] == [3, 3]
        routes["self"].respond(json=AGENT_SELF)  # the cluster took the new address
        routes["configuration"].mock(return_value=httpx.Response(200, json=CONFIGURATION))
        routes["health"].mock(return_value=httpx.Response(200, json=HEALTH_OK))
        view = await backend.view()
        assert view.applied_index == 1500
        clock[0] += REJOIN_SECONDS
        await backend.mend(Snapshot(), None)
    assert [j.call_count for j in joins] == [3, 3]


@respx.mock
async def test_a_rejoin_that_fails_is_logged_and_tried_again_later() -> None:
    _mock_view(URL, health=httpx.Response(200, json=HEALTH_OK), agent_self=_moved_self())
    refused = respx.put(f"{URL}/v1/agent/join/10.0.0.1:8301").mock(
        side_effect=[httpx.ConnectError("refused"), httpx.Response(200)])
    answered = respx.put(f"{URL}/v1/agent/join/10.0.0.3:8301").respond(
        500, text="Failed to join")
    clock = [0.0]
    async with httpx.AsyncClient() as client:
        backend = ConsulBackend(client, URL)
        backend.clock = lambda: clock[0]
        with pytest.raises(BackendUnavailable):
            await backend.view()
        await backend.mend(Snapshot(), None)  # never raises for the store's trouble
        clock[0] += REJOIN_SECONDS
        await backend.mend(Snapshot(), None)
    assert (refused.call_count, answered.call_count) == (2, 2)
