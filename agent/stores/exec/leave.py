"""The exec store's departure: higher departing ordinals first, the quorum guard, then ``stop``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import structlog

from agent.errors import AgentError, KubeError
from agent.model import Outcome
from agent.quorum import quorum_for_removal
from agent.storekit.capabilities import LeaveContext
from agent.stores.exec.contract import Role, role_of

if TYPE_CHECKING:
    from agent.stores.exec.api import ExecBackend

log = structlog.get_logger("agent.leave")

# (ordinal) -> whether that pod exists (the Kubernetes API), None when it cannot tell.
PodExists = Callable[[int], Awaitable[bool | None]]
# (ordinal) -> its agent's URL, where one is known.
PeerUrl = Callable[[int], Awaitable[str | None]]
# The other pods whose nodes run as primary, as hosts (appended to stop, as RSS does).
Primaries = Callable[[], Awaitable[list[str]]]


class ExecDeparture:
    """Once the leave has decided this pod goes for good (a restart runs nothing):

    - pods scaled down together go one at a time, highest ordinal first: a higher pod
      that still exists and whose agent does not say its node stopped goes first;
    - with a ``members`` hook, the quorum guard: never stop a voter the rest cannot
      spare;
    - ``stop``, run again until it succeeds; then ``status`` must say stopped (7).
    """

    removed_event = "MemberStopped"

    def __init__(self, backend: ExecBackend, *, pod_exists: PodExists | None = None,
                 peer_url: PeerUrl | None = None,
                 primaries: Primaries | None = None) -> None:
        self.backend = backend
        self.pod_exists = pod_exists
        self.peer_url = peer_url
        self.primaries = primaries

    async def before_restart(self, leave: LeaveContext) -> str | None:
        return None  # a restart runs no hook

    async def settle(self, leave: LeaveContext, removed: Outcome) -> Outcome:
        return removed  # status said stopped already

    async def _above_running(self, leave: LeaveContext) -> str | None:
        """The first higher ordinal outside the kept ones that has not stopped yet."""
        assert leave.ordinal is not None
        if self.pod_exists is None or leave.keep is None:
            return None
        ordinal = leave.ordinal + 1
        while True:
            try:
                exists = await self.pod_exists(ordinal)
            except KubeError as exc:
                return f"cannot tell whether ordinal {ordinal} is still there ({exc.message})"
            if exists is False:
                return None
            url = await self.peer_url(ordinal) if self.peer_url is not None else None
            role = None
            if url is not None:
                try:
                    view = await leave.membership.view_at(url)
                    role = view.detail("role")
                except AgentError:
                    role = None
            if role != str(Role.STOPPED):
                return (f"ordinal {ordinal} leaves first (one at a time, highest first; "
                        f"its node is {role or 'not answering'})")
            ordinal += 1

    async def remove(self, leave: LeaveContext) -> str:
        hooks = self.backend.hooks
        while (waiting := await self._above_running(leave)) is not None:
            await leave.obstacle(waiting)
        if hooks.hooks.members is not None:
            while True:
                snapshot = await leave.membership.poll_once()
                view, self_id = snapshot.authority, snapshot.self_id
                if view is None or self_id is None:
                    await leave.obstacle("membership unknown: no leader to ask")
                    continue
                if view.member(self_id) is None:
                    break
                obstacle = quorum_for_removal(view, self_id, await leave.reachable(view),
                                              leave.departing(view, self_id))
                if obstacle is None:
                    break
                await leave.obstacle(obstacle)
        if hooks.hooks.stop is None:
            return "no stop hook configured: the store stops with its container"
        while True:
            others = await self.primaries() if self.primaries is not None else []
            result = await hooks.run("stop", hooks.hooks.stop, others)
            if result.ok:
                break
            await leave.obstacle(result.why())
        while True:
            said = role_of(await hooks.run("status", hooks.hooks.status))
            if said is Role.STOPPED:
                return "stop hook succeeded; status says stopped"
            await leave.obstacle(f"stop hook succeeded but status says {said}")
