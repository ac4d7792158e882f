"""The HTTP client for the store's API: timeouts, TLS and auth from settings."""

from __future__ import annotations

import asyncio
import ssl

import httpx

from agent.config.settings import Settings
from agent.errors import ConfigError


class CompletingTransport(httpx.AsyncBaseTransport):
    """Runs every request to its end in a task of its own, whatever happens to the caller.

    The agent bounds its store calls with ``asyncio.timeout`` and cancels the rest of a
    view it no longer needs; httpcore 1.0.9 leaves a connection whose request is cancelled
    between its connect and its send in the pool for good (state NEW: never idle, never
    closed, never reused). Twenty of those and every later request waits for a free
    connection until it times out: a sidecar cut off from its own store, not ready for
    good (seen when a Consul server came back on a new address, about one leak every 20
    polls). Here the caller may go; the request goes on, bounded by httpx's own timeouts
    (the pool's excepted: see ``http_client``), and its response is read whole and closed
    (the store's answers are small JSON).
    """

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner
        self._running: set[asyncio.Task[httpx.Response]] = set()

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


def http_client(settings: Settings) -> httpx.AsyncClient:
    """The store client: timeouts, TLS and auth from settings; secrets read from files."""
    verify: ssl.SSLContext | bool = True
    if settings.store_ca_file or settings.store_cert_file:
        try:
            context = ssl.create_default_context(
                cafile=str(settings.store_ca_file) if settings.store_ca_file else None
            )
            if settings.store_cert_file and settings.store_key_file:
                context.load_cert_chain(str(settings.store_cert_file),
                                        str(settings.store_key_file))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"store TLS files: {exc}") from None
        verify = context
    auth: httpx.BasicAuth | None = None
    if settings.store_username:
        password = ""
        if settings.store_password_file is not None:
            try:
                password = settings.store_password_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"AGENT_STORE_PASSWORD_FILE: {exc.strerror}") from None
        auth = httpx.BasicAuth(settings.store_username, password)
    headers = {}
    if settings.store_token_file is not None:
        try:
            token = settings.store_token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"AGENT_STORE_TOKEN_FILE: {exc.strerror}") from None
        spec = settings.store()
        if spec is None or spec.token_header is None:
            raise ConfigError(f"AGENT_STORE_TOKEN_FILE: {settings.backend} takes no token")
        headers[spec.token_header] = token
    transport = httpx.AsyncHTTPTransport(
        verify=verify, trust_env=False,
        limits=httpx.Limits(max_connections=20, max_keepalive_connections=10))
    return httpx.AsyncClient(
        headers=headers,
        # No deadline on the wait for a free connection: httpcore enforces it by
        # cancelling the wait, with the same leak as above when a connection was handed
        # over at that moment. Every request holding one is bounded by the others.
        timeout=httpx.Timeout(settings.store_timeout_seconds, pool=None),
        auth=auth,
        follow_redirects=False,
        transport=CompletingTransport(transport),
        trust_env=False,
    )
