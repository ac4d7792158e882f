"""The sidecar's HTTP surface: /readyz, /livez, /status, /metrics (aiohttp)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from agent.membership import Membership

MEMBERSHIP: web.AppKey[Membership] = web.AppKey("membership", Membership)
LIVENESS_TIMEOUT: web.AppKey[float] = web.AppKey("liveness_timeout", float)
INFO: web.AppKey[dict[str, Any]] = web.AppKey("info")

JSON = "application/json"


async def readyz(request: web.Request) -> web.Response:
    """200 when every check passes, else 503; from the cached snapshot, no store call."""
    status, body = request.app[MEMBERSHIP].readiness()
    return web.Response(status=status, body=body, content_type=JSON)


async def livez(request: web.Request) -> web.Response:
    """The agent's own loop ticked recently; never depends on the cluster."""
    alive, age = request.app[MEMBERSHIP].alive(request.app[LIVENESS_TIMEOUT])
    body = json.dumps({"alive": alive, "heartbeat_age_seconds": round(age, 3)})
    return web.Response(status=200 if alive else 503, text=body, content_type=JSON)


async def status(request: web.Request) -> web.Response:
    """Everything the agent knows, for humans and `sts-agent status`."""
    membership = request.app[MEMBERSHIP]
    snapshot = membership.snapshot
    now = membership.clock()
    info: dict[str, Any] = request.app[INFO]
    body = {
        **info,
        "verdict": membership.verdict(now).as_dict(),
        "leaving": membership.leaving,
        "polls": membership.polls,
        "last_poll_age_seconds": (round(now - snapshot.polled_at, 3)
                                  if snapshot.polled_at is not None else None),
        "view": snapshot.as_dict(),
    }
    return web.Response(text=json.dumps(body, indent=2), content_type=JSON)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition."""
    body = request.app[MEMBERSHIP].metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4"})


def make_app(membership: Membership, *, liveness_timeout_seconds: float,
             info: dict[str, Any] | None = None) -> web.Application:
    """The aiohttp application; small request limits, read-only routes."""
    app = web.Application(client_max_size=64 * 1024)
    app[MEMBERSHIP] = membership
    app[LIVENESS_TIMEOUT] = liveness_timeout_seconds
    details: dict[str, Any] = dict(info or {})
    app[INFO] = details
    app.router.add_get("/readyz", readyz, allow_head=True)
    app.router.add_get("/livez", livez, allow_head=True)
    app.router.add_get("/status", status)
    app.router.add_get("/metrics", metrics)
    return app
