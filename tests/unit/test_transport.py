"""The completing transport: requests their caller drops end cleanly; the pool never dries."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web

from agent.config.settings import Settings
from agent.storeclient import http_client
from agent.transport import CompletingTransport


@contextlib.asynccontextmanager
async def store() -> AsyncIterator[str]:
    """A store whose /hang answers late and /ok at once, on a free loopback port."""
    async def hang(_: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(text="late")

    async def ok(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def gzipped(_: web.Request) -> web.Response:  # as Consul answers agent/self
        response = web.json_response({"big": "x" * 2000})
        response.enable_compression(web.ContentCoding.gzip)
        return response

    app = web.Application()
    app.router.add_get("/hang", hang)
    app.router.add_get("/ok", ok)
    app.router.add_get("/gzipped", gzipped)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def cancel_many(client: httpx.AsyncClient, url: str, rounds: int) -> None:
    """What a poll does when its budget runs out: requests dropped at every stage."""
    for turn in range(rounds):
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.001 * (turn % 7)):
                await asyncio.gather(client.get(f"{url}/hang"), client.get(f"{url}/ok"))


# As the store client has it: no deadline on the wait for a free connection (httpcore
# cancels that wait, and a connection just handed over is then kept for good).
STORE_TIMEOUT = httpx.Timeout(0.05, pool=None)


def pooled(limit: int) -> httpx.AsyncHTTPTransport:
    return httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=limit,
                                                        max_keepalive_connections=limit))


async def test_cancelled_requests_leave_the_pool_usable() -> None:
    """Without it, httpcore 1.0.9 keeps some of these connections for good: the pool of
    four runs dry and the last requests wait for ever (this test then times out)."""
    async with store() as url:
        transport = CompletingTransport(pooled(4))
        async with httpx.AsyncClient(transport=transport, timeout=STORE_TIMEOUT) as client:
            await cancel_many(client, url, 300)
            # Every request dropped above ends by httpx's own timeouts; the pool serves.
            # These wait for a connection without a deadline, as the store client's do (a
            # pool run dry fails the 20 s); connecting and reading get seconds, not the
            # 50 ms that ends the dropped ones: a loopback connect took longer on a loaded
            # machine (a ConnectTimeout that said nothing of the pool).
            served = httpx.Timeout(5.0, pool=None)
            async with asyncio.timeout(20):
                answers = await asyncio.gather(*(client.get(f"{url}/ok", timeout=served)
                                                 for _ in range(8)))
            assert [a.json() for a in answers] == [{"ok": True}] * 8


async def test_the_response_is_read_whole_and_kept() -> None:
    async with store() as url, httpx.AsyncClient(
            transport=CompletingTransport(pooled(2))) as client:
        response = await client.get(f"{url}/ok")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/json")
        assert response.json() == {"ok": True}
        assert response.http_version == "HTTP/1.1"
        response = await client.get(f"{url}/gzipped", headers={"Accept-Encoding": "gzip"})
        assert response.headers["content-encoding"] == "gzip"
        assert response.json() == {"big": "x" * 2000}


async def test_a_failure_reaches_the_caller_still_waiting() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with httpx.AsyncClient(transport=CompletingTransport(pooled(2))) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{port}/")


def test_the_store_client_uses_it() -> None:
    client = http_client(Settings(backend="rqlite"))
    assert isinstance(client._transport, CompletingTransport)


def test_a_copy_is_the_same_transport() -> None:
    """lightkube deep-copies its connection parameters; the pool must stay one."""
    transport = CompletingTransport(pooled(2))
    assert copy.deepcopy({"transport": transport})["transport"] is transport
