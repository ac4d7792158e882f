"""The agent's HTTP surface on aiohttp's low-level server: the sidecar's /readyz, /livez,
/status, /metrics, /leave; init's GET /init while it runs."""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import structlog
from aiohttp import web

from agent.errors import ConfigError
from agent.membership import Membership

JSON = "application/json"
log = structlog.get_logger("agent.server")
# How long GET /leave/wait waits for the agent's own preStop to begin the leave before it
# begins it itself: the kubelet starts every preStop hook at once, and `sts-agent leave`
# needs a Python start-up (under the agent's CPU limit) before it asks.
LEAVE_START_WINDOW_SECONDS = 3.0


class LeaveTrigger(Protocol):
    """What POST /leave starts (agent.leave.Leaver)."""

    async def leave(self) -> Any: ...

    async def leave_after(self, *, window: float) -> Any: ...

    outcome: Any  # the leave's Outcome (as_dict()) once it ended, else None


class Reported(Protocol):
    """A part of the sidecar that reports its state in /status (agent.repair)."""

    def as_dict(self) -> dict[str, Any]: ...


def allowed_to_leave(remote: str | None, authorization: str | None,
                     token_file: Path | None) -> bool:
    """Loopback clients always; others only with the bearer token from ``token_file``.

    The file is read on every call, so a rotated Secret takes effect at once; the
    comparison is constant-time.
    """
    try:
        if remote is not None:
            address = ipaddress.ip_address(remote.split("%")[0])
            mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1
            if address.is_loopback or (mapped is not None and mapped.is_loopback):
                return True
    except ValueError:
        pass
    if token_file is None or not authorization or not authorization.startswith("Bearer "):
        return False
    try:
        expected = token_file.read_text(encoding="utf-8").strip()
    except OSError:
        return False
    given = authorization.removeprefix("Bearer ").strip()
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())
Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


class Routes:
    """Path -> handler dispatch. The low-level server skips aiohttp's router and
    middleware machinery, which is most of a probe's cost (see BENCHMARKS.md)."""

    def __init__(self, membership: Membership, *, liveness_timeout_seconds: float,
                 info: dict[str, Any] | None = None, leaver: LeaveTrigger | None = None,
                 leave_token_file: Path | None = None, native_sidecar: bool = False,
                 repair: Reported | None = None,
                 parts: dict[str, Reported] | None = None) -> None:
        self.membership = membership
        self.repair = repair
        self.parts = dict(parts or {})  # more of the sidecar in /status, by name
        self.leaver = leaver
        self.leave_token_file = leave_token_file
        self.native_sidecar = native_sidecar
        self.liveness_timeout_seconds = liveness_timeout_seconds
        self.info: dict[str, Any] = dict(info or {})
        self.get: dict[str, Handler] = {
            "/readyz": self.readyz,
            "/livez": self.livez,
            "/status": self.status,
            "/metrics": self.metrics,
        }
        self.post: dict[str, Handler] = {"/leave": self.leave} if leaver is not None else {}
        if leaver is not None:
            self.get["/leave/wait"] = self.leave_wait

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        method = request.method
        table = self.get if method in ("GET", "HEAD") else self.post if method == "POST" else {}
        handler = table.get(request.path)
        if handler is not None:
            return await handler(request)
        if request.path in self.get or request.path in self.post:
            allowed = ["GET", "HEAD"] if request.path in self.get else ["POST"]
            return web.Response(status=405, headers={"Allow": ", ".join(allowed)},
                                text=json.dumps({"error": "method not allowed"}),
                                content_type=JSON)
        return web.Response(status=404, text=json.dumps({"error": "not found"}),
                            content_type=JSON)

    async def readyz(self, request: web.BaseRequest) -> web.Response:
        """200 when every check passes, else 503; from the cached snapshot, no store call."""
        status, body = self.membership.readiness()
        return web.Response(status=status, body=body, content_type=JSON)

    async def livez(self, request: web.BaseRequest) -> web.Response:
        """The agent's own loop ticked recently; never depends on the cluster."""
        alive, age = self.membership.alive(self.liveness_timeout_seconds)
        body = json.dumps({"alive": alive, "heartbeat_age_seconds": round(age, 3)})
        return web.Response(status=200 if alive else 503, text=body, content_type=JSON)

    async def status(self, request: web.BaseRequest) -> web.Response:
        """Everything the agent knows, for humans and `sts-agent status`."""
        membership = self.membership
        snapshot = membership.snapshot
        now = membership.clock()
        body = {
            **self.info,
            "verdict": membership.verdict(now).as_dict(),
            "leaving": membership.leaving,
            "polls": membership.polls,
            "last_poll_age_seconds": (round(now - snapshot.polled_at, 3)
                                      if snapshot.polled_at is not None else None),
            "view": snapshot.as_dict(),
            "repair": self.repair.as_dict() if self.repair is not None else None,
            "leave": (self.leaver.outcome.as_dict()
                      if self.leaver is not None and self.leaver.outcome is not None else None),
            **{name: part.as_dict() for name, part in self.parts.items()},
        }
        return web.Response(text=json.dumps(body, indent=2), content_type=JSON)

    async def leave(self, request: web.BaseRequest) -> web.Response:
        """Start (or join) the leave procedure and answer with its outcome."""
        if not allowed_to_leave(request.remote, request.headers.get("Authorization"),
                                self.leave_token_file):
            return web.Response(status=403, text=json.dumps({"error": "forbidden"}),
                                content_type=JSON)
        assert self.leaver is not None
        outcome = await self.leaver.leave()
        status = 500 if outcome.result == "failed" else 200
        return web.Response(status=status, text=json.dumps(outcome.as_dict()),
                            content_type=JSON)

    async def leave_wait(self, request: web.BaseRequest) -> web.Response:
        """Hold until the leave is over: the store container's preStop (an httpGet, run by
        the kubelet at the same moment as the agent's own preStop), so the store keeps
        serving until its member is out. It joins the leave the agent's preStop started,
        or starts it after a short window, so a slow ``sts-agent leave`` can never let the
        store's SIGTERM cut a removal. On a restart the leave decides to stay and this
        returns at once. No authorisation is needed: the caller decides nothing, whether
        the pod goes away for good is read from the Kubernetes API, as for every trigger.

        As a native sidecar the agent is stopped only after the store has exited, too late
        to remove it: this hook is then the only trigger and starts the leave at once."""
        assert self.leaver is not None
        window = 0.0 if self.native_sidecar else LEAVE_START_WINDOW_SECONDS
        outcome = await self.leaver.leave_after(window=window)
        body = {"leave": outcome.as_dict()}
        # The store's SIGTERM follows this answer: when and after what, in the log.
        log.info("leave_wait_answered", **outcome.as_dict())
        return web.Response(text=json.dumps(body), content_type=JSON)

    async def metrics(self, request: web.BaseRequest) -> web.Response:
        """Prometheus text exposition."""
        return web.Response(body=self.membership.metrics.exposition(),
                            headers={"Content-Type": "text/plain; version=0.0.4"})


def make_server(handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
                ) -> web.Server:
    """aiohttp's low-level server around ``handler`` (the sidecar's Routes, init's
    /init); no access log (probes are frequent), request lines and headers bounded."""
    return web.Server(handler, access_log=None, max_line_size=8190, max_field_size=8190)


@contextlib.asynccontextmanager
async def init_state_server(host: str, port: int, document: Callable[[], dict[str, Any]],
                            asked: Callable[[str], None]) -> AsyncIterator[None]:
    """While init runs, GET /init answers ``document()`` (this pod, whether it holds raft
    state; Galera's ballot once known) on the agent's port: a peer with no state of its
    own bootstraps only when every other bootstrap member says it has none, so a
    whole-cluster restart with one lost volume is told apart from a first start.
    ``asked`` hears the pod named in ``?from=`` (a peer that asks has no state). The
    sidecar takes the port later."""
    async def answer(request: web.BaseRequest) -> web.Response:
        if request.path == "/init" and request.method in ("GET", "HEAD"):
            asker = request.query.get("from")
            if asker:
                asked(asker)
            return web.Response(text=json.dumps(document()), content_type=JSON)
        return web.Response(status=404, text=json.dumps({"error": "not found"}),
                            content_type=JSON)

    runner = web.ServerRunner(make_server(answer), handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, reuse_address=True).start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(f"AGENT_LISTEN (--listen): init cannot listen on {host}:{port}: "
                          f"{exc.strerror}") from None
    try:
        yield
    finally:
        await runner.cleanup()
