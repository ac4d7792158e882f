"""An exec node through its hooks: status (and members) here; a peer's view from its agent."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import httpx
import structlog

from agent.errors import BackendError, BackendUnavailable
from agent.model import ClusterView
from agent.stores.exec.contract import HookResult, Role, role_of
from agent.stores.exec.options import exec_options
from agent.stores.exec.runner import HookRunner
from agent.stores.exec.status import (
    local_view,
    members_view,
    peer_view,
    role_in_status,
    status_check,
    summary,
)

if TYPE_CHECKING:
    from agent.config.settings import Settings
    from agent.storekit.capabilities import SidecarContext, Starter
    from agent.stores.exec.leave import ExecDeparture
    from agent.stores.exec.sidecar import ExecParts
    from agent.stores.exec.start import ExecStarter

log = structlog.get_logger("agent.exec")


async def peer_roles(client: httpx.AsyncClient, urls: Sequence[str]) -> list[Role | None]:
    """What the agents at ``urls`` say their nodes are (GET /status), in order; None
    where one does not answer or does not say."""
    async def role(url: str) -> Role | None:
        try:
            response = await client.get(f"{url.rstrip('/')}/status")
            response.raise_for_status()
            return role_in_status(response.json())
        except (httpx.HTTPError, ValueError):
            return None

    return list(await asyncio.gather(*(role(url) for url in urls)))


class ExecBackend:
    """This node's role from ``status``, which must fail ``exec_status_failures`` times
    in a row before it counts (one transient failure changes nothing); another node's
    view from its agent's /status. ``failed_since`` is when ``status`` began answering
    failed (it exited, neither timing out nor unable to run) without a break: how long
    the node has stood failed, for the starter's restart of a stuck node."""

    name: ClassVar[str] = "exec"

    def __init__(self, client: httpx.AsyncClient, base_url: str, *,
                 peer_api_port: int | None = None,
                 settings: Settings | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if settings is None:
            raise BackendError("exec: the backend needs the agent's settings (its hooks)")
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.hooks = HookRunner.of(settings)
        self.threshold = exec_options(settings).exec_status_failures
        self.agent_port = settings.listen_address()[1]
        self.self_id = settings.pod_name or "self"
        self.failures = 0
        self.role = Role.STOPPED  # as counted (a failure below the threshold keeps it)
        self._sidecar_parts: ExecParts | None = None
        self.last_status: HookResult | None = None
        self.clock = clock
        self.failed_since: float | None = None

    async def status(self) -> Role:
        """Run ``status``; the role as counted, the threshold applied."""
        result = await self.hooks.run("status", self.hooks.hooks.status)
        self.last_status = result
        said = role_of(result)
        if said is Role.FAILED and result.error is None:
            if self.failed_since is None:
                self.failed_since = self.clock()
        else:  # running, stopped, or a hook that could not say: the streak ends
            self.failed_since = None
        if said is Role.FAILED:
            self.failures += 1
            if self.failures < self.threshold:
                log.warning("status_failure_tolerated", failures=self.failures,
                            threshold=self.threshold, reason=result.why())
                return self.role
        elif self.failures:
            log.info("status_recovered", after_failures=self.failures, role=str(said))
            self.failures = 0
        if said is not self.role:
            log.info("role_changed", role=str(said), previous=str(self.role),
                     **({"reason": result.why()} if said is Role.FAILED else {}))
        self.role = said
        return said

    def start_succeeded(self) -> None:
        """A start hook has just succeeded: a failed streak begins anew. What status said
        while the node was starting (a long state transfer, with no answer yet) is not a
        stuck node, and must not have it stopped the moment it has joined."""
        self.failed_since = None

    def forget_failures(self) -> None:
        """The node was stopped on purpose: it counts as stopped, its failures gone."""
        self.role = Role.STOPPED
        self.failures = 0
        self.failed_since = None

    async def members(self) -> ClusterView | None:
        """The ``members`` hook's view, when one is configured."""
        spec = self.hooks.hooks.members
        if spec is None:
            return None
        result = await self.hooks.run("members", spec)
        if not result.ok:
            raise BackendUnavailable(result.why())
        try:
            document = json.loads(result.stdout)
        except ValueError:
            raise BackendError(f"members hook printed no JSON: {result.stdout[:200]!r}") from None
        return members_view(document, agent_port=self.agent_port)

    async def view(self, api_url: str | None = None) -> ClusterView:
        if api_url is not None and api_url.rstrip("/") != self.base_url:
            return await self._peer(api_url.rstrip("/"))
        role = await self.status()
        result = self.last_status
        members = await self.members() if role.running else None
        details: tuple[tuple[str, str | int], ...] = (
            ("role", str(role)), ("status_failures", self.failures))
        if result is not None:
            details += (("status_exit_code", -1 if result.exit_code is None
                         else result.exit_code), ("status_said", summary(result)))
        return local_view(self.self_id, role, members=members, details=details,
                          check=status_check(role, result, self.failures, self.threshold))

    async def _peer(self, url: str) -> ClusterView:
        try:
            response = await self.client.get(f"{url}/status")
        except httpx.HTTPError as exc:
            raise BackendUnavailable(f"{url}: {type(exc).__name__}: {exc}") from None
        if response.status_code >= 500:
            raise BackendUnavailable(f"{url}/status answered {response.status_code}")
        if response.status_code != 200:
            raise BackendError(f"{url}/status answered {response.status_code}")
        try:
            document = response.json()
        except ValueError:
            raise BackendError(f"{url}/status answered no JSON") from None
        return peer_view(document, url)

    # --- capabilities: the agent starts the node, it leaves by ``stop`` ----------------
    def _parts(self, context: SidecarContext) -> ExecParts:
        from agent.stores.exec.sidecar import ExecParts

        if self._sidecar_parts is None:
            self._sidecar_parts = ExecParts(self, context)
        return self._sidecar_parts

    def departure(self, context: SidecarContext) -> ExecDeparture:
        """An exec member leaves by its own ``stop`` hook; no member can remove another."""
        return self._parts(context).departure

    def starter(self, context: SidecarContext) -> ExecStarter:
        return self._parts(context).starter

    def status_parts(self, starter: Starter) -> dict[str, Any]:
        return {"exec_start": starter, "exec_hooks": self.hooks}

    def view_seconds(self) -> float:
        """This node's view is its status (and members) hooks' run: their timeouts."""
        hooks = self.hooks.hooks
        return hooks.status.timeout + 1.0 + (hooks.members.timeout if hooks.members else 0.0)
