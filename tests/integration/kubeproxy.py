"""A fault proxy in front of the real API server: forwards every request (the answers, RBAC
and objects are the API server's own) and, on demand, delays, fails, trickles or refuses
them, as a loaded, failing or token-rotating API server would."""

from __future__ import annotations

import asyncio
import http
import json
import ssl
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from aiohttp import web

from player.controlplane import ControlPlane
from player.dns import free_port


def status_body(code: int, reason: str, message: str) -> dict[str, Any]:
    """A metav1.Status, as the API server answers errors."""
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


@dataclass(frozen=True, slots=True)
class Fault:
    """How the proxy mistreats a request.

    It waits ``delay`` seconds before answering; then answers ``status`` (a metav1.Status,
    as the API server's own errors are) instead of the real answer when that is set; else
    sends the real answer's body ``chunk`` bytes at a time, ``trickle`` seconds apart, when
    that is set. ``resource`` ("statefulsets", "events", ...) limits the fault to requests
    for that resource; None means any request.
    """

    delay: float = 0.0
    status: int | None = None
    trickle: float = 0.0
    chunk: int = 64
    resource: str | None = None


@dataclass
class _Injected:
    fault: Fault
    remaining: int | None  # None: until cleared


def resource_of(path: str) -> str | None:
    """The resource a request is for: ``statefulsets`` in
    /apis/apps/v1/namespaces/db/statefulsets/db."""
    parts = path.strip("/").split("/")
    if "namespaces" in parts:
        index = parts.index("namespaces") + 2
        return parts[index] if index < len(parts) else None
    return parts[-1] or None


class KubeFaultProxy:
    """Plain HTTP on ``host`` in front of ``control_plane``'s API server (TLS), in a thread."""

    def __init__(self, control_plane: ControlPlane, host: str = "127.0.0.1") -> None:
        self.control_plane = control_plane
        self.host = host
        self.port = 0
        # Every request as it arrives (one a client gave up on included), and every answer.
        self.received: list[tuple[str, str]] = []
        self.requests: list[tuple[str, str, int]] = []
        self.available = True
        self.revoked: set[str] = set()
        # The API server answers "application/json" exactly (lightkube raises its ApiError
        # only for that type); False plays a proxy that adds "; charset=utf-8".
        self.exact_json_type = True
        self._faults: list[_Injected] = []
        self._lock = threading.Lock()
        self._delayed: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: httpx.AsyncClient | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="kubeproxy")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def inject(self, fault: Fault, *, times: int | None = None) -> None:
        """Apply ``fault`` to the next ``times`` matching requests (None: every one until
        ``clear_faults()``). Faults queue: the earliest one still applying wins."""
        if times is not None and times < 1:
            raise ValueError(f"times must be at least 1, not {times}")
        with self._lock:
            self._faults.append(_Injected(fault, times))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def received_for(self, resource: str) -> int:
        """How many requests for ``resource`` arrived so far."""
        return sum(1 for _, path in list(self.received) if resource_of(path) == resource)

    def statuses(self, resource: str) -> list[int]:
        return [status for _, path, status in list(self.requests)
                if resource_of(path) == resource]

    def _take_fault(self, path: str) -> Fault | None:
        resource = resource_of(path)
        with self._lock:
            for injected in self._faults:
                if injected.fault.resource in (None, resource):
                    if injected.remaining is not None:
                        injected.remaining -= 1
                        if injected.remaining == 0:
                            self._faults.remove(injected)
                    return injected.fault
        return None

    def _status(self, code: int, message: str) -> web.Response:
        phrase = http.HTTPStatus(code).phrase
        headers = {"Retry-After": "1"} if code == 429 else None
        return web.json_response(status_body(code, phrase.replace(" ", ""), message),
                                 status=code, headers=headers)

    async def _forward(self, request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not self.available:
            return self._status(503, "the API server is unavailable")
        if token in self.revoked:
            return self._status(401, "Unauthorized")
        assert self._client is not None
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() in ("authorization", "content-type", "accept")}
        upstream = await self._client.request(
            request.method, request.path_qs, content=await request.read(), headers=headers)
        return web.Response(status=upstream.status_code, body=upstream.content,
                            headers={"Content-Type": upstream.headers.get(
                                "Content-Type", "application/json")})

    @web.middleware
    async def _middleware(self, request: web.Request,
                          handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                          ) -> web.StreamResponse:
        self.received.append((request.method, request.path))
        fault = self._take_fault(request.path)
        if fault is not None and fault.delay > 0:
            task = asyncio.current_task()
            assert task is not None
            self._delayed.add(task)  # stop() cancels it rather than wait it out
            try:
                await asyncio.sleep(fault.delay)
            finally:
                self._delayed.discard(task)
        if fault is not None and fault.status is not None:
            response: web.StreamResponse = self._status(fault.status, "injected: " +
                                                        http.HTTPStatus(fault.status).phrase)
        else:
            response = await handler(request)
        content_type = response.headers.get("Content-Type", "")
        if self.exact_json_type and content_type.startswith("application/json"):
            response.headers["Content-Type"] = "application/json"
        elif not self.exact_json_type and content_type == "application/json":
            response.headers["Content-Type"] = "application/json; charset=utf-8"
        self.requests.append((request.method, request.path, response.status))
        if fault is not None and fault.trickle > 0 and isinstance(response, web.Response):
            return await self._trickle(request, response, fault)
        return response

    async def _trickle(self, request: web.Request, response: web.Response,
                       fault: Fault) -> web.StreamResponse:
        """Send ``response`` with its headers at once and its body in pieces, slowly."""
        body = response.body
        assert isinstance(body, bytes)
        streamed = web.StreamResponse(status=response.status, headers=response.headers)
        streamed.content_length = len(body)
        await streamed.prepare(request)
        task = asyncio.current_task()
        assert task is not None
        self._delayed.add(task)
        try:
            for offset in range(0, len(body), fault.chunk):
                await streamed.write(body[offset:offset + fault.chunk])
                await asyncio.sleep(fault.trickle)
            await streamed.write_eof()
        except ConnectionResetError:
            pass  # the client gave up waiting: what the fault is for, not an error
        finally:
            self._delayed.discard(task)
        return streamed

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._client = httpx.AsyncClient(
            base_url=self.control_plane.server, timeout=30, trust_env=False,
            verify=ssl.create_default_context(cafile=str(self.control_plane.ca)))
        app = web.Application(middlewares=[self._middleware])
        app.router.add_route("*", "/{tail:.*}", self._forward)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        loop.run_until_complete(runner.setup())
        self.port = free_port(self.host)
        site = web.TCPSite(runner, self.host, self.port)
        loop.run_until_complete(site.start())
        self._started.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.run_until_complete(self._client.aclose())
        loop.close()

    def start(self) -> KubeFaultProxy:
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("the API fault proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread.is_alive():
            def release() -> None:
                for task in list(self._delayed):
                    task.cancel()

            self._loop.call_soon_threadsafe(release)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)


def dump(proxy: KubeFaultProxy) -> str:
    """The requests the proxy saw, for a failing test's output."""
    return json.dumps(proxy.requests[-40:])
