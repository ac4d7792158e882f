"""A node stuck outside the Primary component marked for its liveness probe, and only it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from structlog.testing import capture_logs

from agent.config.settings import Settings
from agent.stores.galera.api import GaleraBackend
from agent.stores.galera.options import GaleraOptions
from agent.stores.galera.status import GaleraStatus
from agent.stores.galera.stuck import StuckMember
from tests.unit.stores.galera.polls import OUTSIDE, Clock, Events, snapshot, status

AFTER = 30.0
class Node:
    """A StuckMember, its clock and Events, polled as the sidecar does."""

    def __init__(self, marker: Path) -> None:
        self.clock = Clock()
        self.events = Events()
        self.stuck = StuckMember(marker, after_seconds=AFTER, clock=self.clock)

    async def poll(self, own: GaleraStatus | None, *, after: float = 0.0,
                   **kwargs: Any) -> None:
        self.clock.now += after
        await self.stuck.on_poll(snapshot(own, **kwargs), own, self.events)


async def test_marked_after_the_window_while_a_peer_is_primary(tmp_path: Path) -> None:
    marker = tmp_path / "restart-mariadbd"
    node = Node(marker)
    stuck = status(**OUTSIDE)
    await node.poll(stuck, peer={})
    await node.poll(stuck, peer={}, after=AFTER - 1)
    assert not marker.exists()
    with capture_logs() as logs:
        await node.poll(stuck, peer={}, after=1)
    assert marker.exists()
    assert "answered non-Primary" in marker.read_text()
    [(reason, message, warning)] = node.events.sent
    assert reason == "GaleraMemberRestarted" and warning
    assert "mysql://10.0.0.1:3306 is Primary" in message, message
    assert [e["event"] for e in logs] == ["galera_member_restart"]
    # Marked once: the next polls of the same incarnation change nothing.
    await node.poll(stuck, peer={}, after=5)
    assert len(node.events.sent) == 1 and marker.exists()


async def test_the_marker_goes_once_the_marked_node_is_gone(tmp_path: Path) -> None:
    marker = tmp_path / "restart-mariadbd"
    node = Node(marker)
    stuck = status(**OUTSIDE)
    await node.poll(stuck, peer={})
    await node.poll(stuck, peer={}, after=AFTER)
    assert marker.exists()
    await node.poll(None, peer={}, error="connection refused", after=5)  # restarting
    assert not marker.exists() and node.stuck.restarts == 1
    # The new incarnation (another group id) starts a new count, from zero.
    again = status(**OUTSIDE, wsrep_gcomm_uuid="11111111-ee63-11f1-af78-87be3e0be0ec")
    await node.poll(again, peer={}, after=1)
    await node.poll(again, peer={}, after=AFTER - 1)
    assert not marker.exists()


async def test_a_new_incarnation_answering_at_once_clears_the_marker(tmp_path: Path) -> None:
    """The kubelet's restart was quicker than a poll: the node answers with another
    group id (or none yet); the marker goes before the new container's probe runs."""
    marker = tmp_path / "restart-mariadbd"
    node = Node(marker)
    stuck = status(**OUTSIDE)
    await node.poll(stuck, peer={})
    await node.poll(stuck, peer={}, after=AFTER)
    await node.poll(status(**OUTSIDE, wsrep_gcomm_uuid=""), peer={}, after=1)
    assert not marker.exists()


async def test_a_new_incarnation_without_a_group_id_is_known_by_its_uptime(
        tmp_path: Path) -> None:
    """A Disconnected node may show no group id, before and after its restart: the new
    mariadbd's uptime, below the marked one's, says it is another."""
    marker = tmp_path / "restart-mariadbd"
    node = Node(marker)

    def disconnected(uptime: int) -> GaleraStatus:
        return status(**{**OUTSIDE, "wsrep_cluster_status": "Disconnected",
                         "wsrep_gcomm_uuid": "", "Uptime": str(uptime)})

    await node.poll(disconnected(600), peer={})
    await node.poll(disconnected(630), peer={}, after=AFTER)
    assert marker.exists()
    await node.poll(disconnected(640), peer={}, after=10)
    assert marker.exists()  # the same mariadbd, still stuck: the probe restarts it
    await node.poll(disconnected(3), peer={}, after=5)
    assert not marker.exists() and node.stuck.restarts == 1


async def test_the_count_restarts_on_any_poll_in_a_primary_or_without_an_answer(
        tmp_path: Path) -> None:
    """A joiner receiving a full copy answers nothing; a view change passes through
    non-Primary for a moment: neither adds up to a restart."""
    marker = tmp_path / "restart-mariadbd"
    node = Node(marker)
    stuck = status(**OUTSIDE)
    for between in (status(), None):
        await node.poll(stuck, peer={})
        await node.poll(stuck, peer={}, after=AFTER - 1)
        await node.poll(between, peer={}, error=None if between else "refused", after=0.5)
        await node.poll(stuck, peer={}, after=0.5)
        assert not marker.exists()
    await node.poll(stuck, peer={}, after=AFTER)
    assert marker.exists()


async def test_left_alone_without_a_primary_peer(tmp_path: Path) -> None:
    """A full outage or a partition with no majority: every node is outside, nobody
    answers as Primary; a restart would not help. Said once, with why."""
    marker = tmp_path / "restart-mariadbd"
    node = Node(marker)
    stuck = status(**OUTSIDE)
    with capture_logs() as logs:
        await node.poll(stuck, peer=None)
        for _ in range(3):
            await node.poll(stuck, peer=None, after=AFTER)
        await node.poll(stuck, peer=OUTSIDE, after=AFTER)  # a peer answers, not Primary
    assert not marker.exists() and not node.events.sent
    held = [e for e in logs if e["event"] == "galera_member_stuck_left_alone"]
    assert len(held) == 1 and "no peer answers" in held[0]["why"]


async def test_left_alone_beside_another_history(tmp_path: Path) -> None:
    """The Primary component a peer is in started another history (a forced seed of a
    wiped volume): joining it would replace this node's data by a full copy."""
    marker = tmp_path / "restart-mariadbd"
    node = Node(marker)
    stuck = status(**OUTSIDE)
    other = {"wsrep_cluster_state_uuid": "00000000-1111-11f1-bd7e-467014377b0a"}
    with capture_logs() as logs:
        await node.poll(stuck, peer=other)
        await node.poll(stuck, peer=other, after=AFTER)
    assert not marker.exists()
    [held] = [e for e in logs if e["event"] == "galera_member_stuck_left_alone"]
    assert "not this node's" in held["why"]


async def test_a_marker_left_by_an_earlier_agent_is_removed_at_start(tmp_path: Path) -> None:
    marker = tmp_path / "restart-mariadbd"
    marker.write_text("an earlier agent's\n")
    node = Node(marker)
    await node.poll(status(**OUTSIDE), peer={})
    assert not marker.exists()


async def test_an_unwritable_marker_is_said_once(tmp_path: Path) -> None:
    marker = tmp_path / "missing" / "restart-mariadbd"
    node = Node(marker)
    stuck = status(**OUTSIDE)
    with capture_logs() as logs:
        await node.poll(stuck, peer={})
        for _ in range(3):
            await node.poll(stuck, peer={}, after=AFTER)
    assert [e["event"] for e in logs] == ["galera_member_restart_unmarked"]
    assert not node.events.sent


async def test_the_backend_marks_only_when_configured(tmp_path: Path) -> None:
    """AGENT_GALERA_RESTART_MARKER unset: never; set: the backend's mend counts."""
    plain = GaleraBackend(httpx.AsyncClient(), "unix:///run/mysqld/mysqld.sock",
                          settings=Settings(backend="galera"))
    assert plain.stuck is None
    marker = tmp_path / "restart-mariadbd"
    settings = Settings(backend="galera").with_options(GaleraOptions(
        galera_restart_marker=marker, galera_restart_non_primary_seconds=0.001))
    galera = GaleraBackend(httpx.AsyncClient(), "unix:///run/mysqld/mysqld.sock",
                           settings=settings)
    assert galera.stuck is not None and galera.stuck.after_seconds == 0.001
    galera.own = status(**OUTSIDE)
    polled = snapshot(galera.own, peer={})
    await galera.mend(polled, None)
    galera.stuck.clock = lambda: 1e9  # the window has passed
    await galera.mend(polled, None)
    assert marker.exists()
    # A poll whose local read failed passes no status: the marked node counts as gone.
    await galera.mend(snapshot(None, peer={}, error="refused"), None)
    assert not marker.exists()
