"""The agent's HTTP surface on a real aiohttp server (the sidecar's, init's GET /init) and `run`."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
import respx
from aiohttp import web
from aiohttp.test_utils import RawTestServer, TestClient

from agent.config.settings import Settings
from agent.errors import ConfigError
from agent.membership import Membership
from agent.model import ClusterView, Member
from agent.readiness import Policy
from agent.server import Routes, init_state_server, make_server
from agent.sidecar import run_sidecar
from tests.fakes import free_port
from tests.unit.stores.etcd.test_api import MEMBERS_34, STATUS_34

Client = TestClient[web.BaseRequest, None]


class OneNode:
    """A store that is its own leader."""

    async def view(self, api_url: str | None = None) -> ClusterView:
        return ClusterView(members=(Member(id="a", name="a", address="a:2"),), leader_id="a",
                           self_id="a", applied_index=5, commit_index=5)


@pytest.fixture
async def client() -> AsyncIterator[tuple[Client, Membership]]:
    membership = Membership(OneNode(), policy=Policy(), poll_interval_seconds=1,
                            poll_timeout_seconds=1)
    routes = Routes(membership, liveness_timeout_seconds=30, info={"backend": "test"})
    server = make_server(routes)
    test_client: Client
    async with TestClient(RawTestServer(server.request_handler)) as test_client:
        yield test_client, membership


async def test_readyz_503_until_first_poll_then_200(
    client: tuple[Client, Membership],
) -> None:
    http, membership = client
    response = await http.get("/readyz")
    assert response.status == 503
    body = await response.json()
    assert body["ready"] is False and body["checks"][0]["name"] == "store_reachable"
    await membership.poll_once()
    response = await http.get("/readyz")
    assert response.status == 200
    assert (await http.head("/readyz")).status == 200


async def test_livez_status_metrics(client: tuple[Client, Membership]) -> None:
    http, membership = client
    await membership.poll_once()
    livez = await http.get("/livez")
    assert livez.status == 200 and (await livez.json())["alive"] is True
    status = await (await http.get("/status")).json()
    assert status["backend"] == "test" and status["verdict"]["ready"] is True
    assert status["view"]["self_id"] == "a"
    metrics = await (await http.get("/metrics")).text()
    assert "sts_agent_ready 1.0" in metrics and "sts_agent_poll_seconds_bucket" in metrics


async def test_livez_fails_when_loop_stalls(client: tuple[Client, Membership]) -> None:
    http, membership = client
    membership.heartbeat -= 31
    response = await http.get("/livez")
    assert response.status == 503


async def test_unknown_paths_and_methods(client: tuple[Client, Membership]) -> None:
    http, _ = client
    assert (await http.get("/nope")).status == 404
    assert (await http.post("/readyz")).status == 405
    assert (await http.delete("/status")).status == 405


@respx.mock(assert_all_called=False)
async def test_run_sidecar_serves_and_stops_cleanly(respx_mock: respx.MockRouter) -> None:
    port = free_port()
    store = "http://127.0.20.2:2379"
    # The member list's leader etcd-0 is asked for its view too.
    for base in (store, "http://127.0.20.1:2379"):
        respx_mock.post(f"{base}/v3/cluster/member/list").respond(json=MEMBERS_34)
    respx_mock.post(f"{store}/v3/maintenance/status").respond(json=STATUS_34)
    leader_status = {**STATUS_34, "header": {**STATUS_34["header"],
                                             "member_id": "2894873590417502950"},
                     "raftAppliedIndex": "412"}
    leader_members = {**MEMBERS_34, "header": leader_status["header"]}
    respx_mock.post("http://127.0.20.1:2379/v3/cluster/member/list").respond(json=leader_members)
    respx_mock.post("http://127.0.20.1:2379/v3/maintenance/status").respond(json=leader_status)
    respx_mock.route(host="127.0.0.1").pass_through()
    settings = Settings(backend="etcd", store_url=store, listen=f"127.0.0.1:{port}",
                        poll_interval_seconds=0.05, shutdown_timeout_seconds=2)
    stop = asyncio.Event()
    task = asyncio.create_task(run_sidecar(settings, stop=stop))
    async with httpx.AsyncClient() as http:
        for _ in range(200):
            try:
                response = await http.get(f"http://127.0.0.1:{port}/readyz")
                if response.status_code == 200:
                    break
            except httpx.ConnectError:
                pass
            await asyncio.sleep(0.02)  # poll interval while waiting for the sidecar
        assert response.status_code == 200, response.text
        assert json.loads(response.text)["ready"] is True
    stop.set()
    assert await asyncio.wait_for(task, 5) == 0


class WindowLeaver:
    """Records the window GET /leave/wait gave the agent's own preStop."""

    def __init__(self) -> None:
        self.windows: list[float] = []
        self.outcome: object = None

    async def leave(self) -> object:
        raise AssertionError("GET /leave/wait goes through leave_after")

    async def leave_after(self, *, window: float) -> object:
        from agent.leave import Outcome
        self.windows.append(window)
        self.outcome = Outcome("removed", "scale-down")
        return self.outcome


@pytest.mark.parametrize(("native", "window"), [(False, 3.0), (True, 0.0)])
async def test_leave_wait_starts_the_leave_after_a_window(native: bool, window: float) -> None:
    """A classic sidecar's own preStop usually starts the leave, so the store's hook gives
    it a moment and then starts it itself; a native sidecar stops after the store, so the
    store's hook is the trigger at once."""
    membership = Membership(OneNode(), policy=Policy(), poll_interval_seconds=1,
                            poll_timeout_seconds=1)
    leaver = WindowLeaver()
    routes = Routes(membership, liveness_timeout_seconds=30, leaver=leaver,
                    native_sidecar=native)
    test_client: Client
    async with TestClient(RawTestServer(make_server(routes).request_handler)) as test_client:
        status = await (await test_client.get("/status")).json()
        response = await test_client.get("/leave/wait")
        body = await response.json()
        after = await (await test_client.get("/status")).json()
    assert response.status == 200
    assert leaver.windows == [window]
    assert body["leave"]["result"] == "removed"
    # /status says the leave's outcome once there is one (kubectl sts-agent status).
    assert status["leave"] is None and after["leave"] == body["leave"]


async def test_init_answers_its_state_while_it_runs_and_frees_the_port() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    document: dict[str, object] = {"pod": "etcd-1", "store": "etcd", "has_state": True}
    askers: list[str] = []
    async with httpx.AsyncClient() as http:
        async with init_state_server("127.0.0.1", port, document.copy, askers.append):
            answer = await http.get(f"http://127.0.0.1:{port}/init")
            assert answer.status_code == 200 and answer.json() == document
            document["ballot"] = {"ordinal": 1}  # read afresh on every request
            answer = await http.get(f"http://127.0.0.1:{port}/init")
            assert answer.json()["ballot"] == {"ordinal": 1}
            await http.get(f"http://127.0.0.1:{port}/init?from=etcd-2")
            assert askers == ["etcd-2"]
            assert (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code == 404
            with pytest.raises(ConfigError, match="init cannot listen"):
                async with init_state_server("127.0.0.1", port, document.copy, askers.append):
                    pass
        with pytest.raises(httpx.ConnectError):  # the sidecar takes the port next
            await http.get(f"http://127.0.0.1:{port}/init")
