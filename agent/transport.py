"""An httpx transport whose requests run to their end whatever the caller does."""

from __future__ import annotations

import asyncio

import httpx


def completing_timeout(seconds: float) -> httpx.Timeout:
    """``seconds`` for connecting, reading and writing, and no deadline on the wait for a
    free connection: httpcore enforces that one by cancelling the wait, and a connection
    handed over at that moment then stays in the pool for good (see CompletingTransport).
    Every request holding a connection is bounded by the other three."""
    return httpx.Timeout(seconds, pool=None)


class CompletingTransport(httpx.AsyncBaseTransport):
    """Runs every request to its end in a task of its own, whatever happens to the caller.

    The agent bounds its store calls with ``asyncio.timeout`` and cancels the rest of a
    view it no longer needs; httpcore 1.0.9 leaves a connection whose request is cancelled
    between its connect and its send in the pool for good (state NEW: never idle, never
    closed, never reused). Twenty of those and every later request waits for a free
    connection until it times out: a sidecar cut off from its own store, not ready for
    good (seen when a Consul server came back on a new address, about one leak every 20
    polls). Here the caller may go; the request goes on, bounded by httpx's own timeouts
    (the pool's excepted: see ``completing_timeout``), and its response is read whole and closed
    (the store's answers are small JSON).
    """

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner
        self._running: set[asyncio.Task[httpx.Response]] = set()

    def __deepcopy__(self, memo: dict[int, object]) -> CompletingTransport:
        # lightkube copies its connection parameters (dataclasses.asdict): a transport and
        # its pool are one shared thing, never copied (its TLS context cannot be).
        return self

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        task = asyncio.create_task(self._complete(request))
        self._running.add(task)
        task.add_done_callback(self._finished)
        return await asyncio.shield(task)

    def _finished(self, task: asyncio.Task[httpx.Response]) -> None:
        self._running.discard(task)
        if not task.cancelled():
            task.exception()  # a caller that went away no longer wants the failure

    async def _complete(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        try:
            # As sent (gzip stays gzip): the client decodes it by the headers kept.
            content = b"".join([chunk async for chunk in response.aiter_raw()])
        finally:
            await response.aclose()
        return httpx.Response(response.status_code, headers=response.headers,
                              content=content, extensions=response.extensions)

    async def aclose(self) -> None:
        for task in list(self._running):
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
        await self._inner.aclose()
