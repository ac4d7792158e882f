"""A non-raft store whose member leaves by stopping: a backend that is Departing, and its
departure, with no engine or sidecar code of its own."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from agent.model import ClusterView, Member, Outcome

if TYPE_CHECKING:
    import httpx

    from agent.config.settings import Settings
    from agent.storekit.capabilities import LeaveContext, SidecarContext


class FakeDeparture:
    """Leaves by "stopping": says so, and records every call."""

    removed_event = "FakeMemberStopped"

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def before_restart(self, leave: LeaveContext) -> str | None:
        self.calls.append("before_restart")
        return None

    async def remove(self, leave: LeaveContext) -> str:
        self.calls.append("remove")
        return "stopped cleanly"

    async def settle(self, leave: LeaveContext, removed: Outcome) -> Outcome:
        self.calls.append("settle")
        return removed


class FakeBackend:
    """One member, itself; no leader, no removal through another member."""

    name: ClassVar[str] = "fake"

    def __init__(self, client: httpx.AsyncClient, base_url: str, *,
                 peer_api_port: int | None = None,
                 settings: Settings | None = None) -> None:
        self.base_url = base_url
        self.departures: list[FakeDeparture] = []

    async def view(self, api_url: str | None = None) -> ClusterView:
        me = Member("fake-0", "fake-0", "127.0.0.1:1")
        return ClusterView(members=(me,), leader_id=None, self_id="fake-0")

    def departure(self, context: SidecarContext) -> FakeDeparture:
        self.departures.append(FakeDeparture())
        return self.departures[-1]
