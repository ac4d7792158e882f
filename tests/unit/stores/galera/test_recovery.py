"""The seed of a start by pc.recovery: it bootstraps only if no Primary component formed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from agent.stores.galera.bootstrap import (
    add_restart_options,
    drop_new_cluster,
    drop_restart_options,
    is_new_cluster,
)
from agent.stores.galera.recovery import Armed, RecoverySeed, listening
from agent.stores.galera.status import GaleraStatus
from tests.unit.stores.galera.polls import Clock, Events, snapshot, status

AFTER = 20.0
X = "e955b900-ee63-11f1-bd7e-467014377b0a"
CONFIG = "[mysqld]\nwsrep_cluster_address = gcomm://a:4567,b:4567\nwsrep_on = ON\n"


class Seed:
    """A RecoverySeed with its clock, Events and a group port the test opens and
    closes, polled as the sidecar does."""

    def __init__(self, tmp_path: Path, *, armed: bool = True, marker: bool = True) -> None:
        self.config = tmp_path / "config"
        self.config.mkdir()
        (self.config / "galera.cnf").write_text(CONFIG)
        self.path = self.config / "sts-agent-recovery.json"
        if armed:
            Armed(position=f"{X}:41", reason="every pod's gvwstate.dat ...").write(self.path)
        self.marker = self.config / "restart-mariadbd" if marker else None
        self.clock = Clock()
        self.events = Events()
        self.port_open = False
        self.seed = RecoverySeed(self.path, config_dir=self.config, marker=self.marker,
                                 group=("10.0.0.2", 4567), after_seconds=AFTER,
                                 probe=self.probe, clock=self.clock)

    async def probe(self, host: str, port: int) -> bool:
        assert (host, port) == ("10.0.0.2", 4567)
        return self.port_open

    async def poll(self, own: GaleraStatus | None, *, after: float = 0.0,
                   **kwargs: Any) -> None:
        self.clock.now += after
        error = None if own is not None else "2003: Can't connect to MySQL server"
        await self.seed.on_poll(snapshot(own, error=error, **kwargs), own, self.events)

    def text(self) -> str:
        return (self.config / "galera.cnf").read_text()

    def flagged(self) -> bool:
        return any(is_new_cluster(line) for line in self.text().splitlines())

    def new_member(self) -> bool:
        return 'wsrep_provider_options = "pc.recovery=false"' in self.text()


async def test_a_view_that_never_re_forms_is_seeded_by_a_restart(tmp_path: Path) -> None:
    node = Seed(tmp_path)
    await node.poll(None)  # mariadbd starting: its group port not open yet
    node.port_open = True  # restored: waiting for every member, no SQL
    await node.poll(None, after=5)
    await node.poll(None, after=AFTER - 1)
    assert not node.flagged() and node.marker is not None and not node.marker.exists()
    with capture_logs() as logs:
        await node.poll(None, after=1)
    assert node.flagged() and node.new_member() and node.marker.exists()
    assert f"wsrep_start_position = {X}:41\n" in node.text()
    assert "latest position" in node.marker.read_text()
    assert "galera_recovery_bootstrap" in [e["event"] for e in logs]
    [(reason, message, warning)] = node.events.sent
    assert reason == "GaleraRecoveryBootstrapped" and warning
    assert f"latest position {X}:41" in message, message
    assert not node.path.exists()  # acted on once: a later sidecar never acts on it
    await node.poll(None, after=1)  # the kubelet has not restarted it yet
    assert node.marker.exists()
    node.port_open = False  # stopped: the next mariadbd reads the flag
    await node.poll(None, after=3)
    assert not node.marker.exists() and node.flagged()
    await node.poll(status(wsrep_cluster_size="1"), after=3)  # seeded, alone
    assert node.flagged()  # a restart of mariadbd alone seeds the same history again
    await node.poll(status(), after=3)  # another member joined
    assert node.text() == CONFIG  # a later outage restores the view again
    assert len(node.events.sent) == 1


async def test_a_peer_in_a_primary_component_disarms_it(tmp_path: Path) -> None:
    node = Seed(tmp_path)
    node.port_open = True
    await node.poll(None, peer={})
    assert not node.path.exists()
    await node.poll(None, peer={}, after=AFTER * 2)
    assert node.text() == CONFIG and not node.events.sent


async def test_pc_recovery_forming_the_component_disarms_it(tmp_path: Path) -> None:
    node = Seed(tmp_path)
    node.port_open = True
    await node.poll(None)
    await node.poll(status(), after=3)  # Primary: pc.recovery re-formed the view
    assert not node.path.exists()
    await node.poll(None, after=AFTER * 2)  # later down again: not this decision's
    assert node.text() == CONFIG and not node.events.sent


async def test_the_wait_counts_only_while_mariadbd_waits(tmp_path: Path) -> None:
    node = Seed(tmp_path)
    node.port_open = True
    await node.poll(None)
    node.port_open = False  # it stopped (a crash): the count starts again
    await node.poll(None, after=AFTER - 1)
    node.port_open = True
    await node.poll(None, after=1)
    await node.poll(None, after=AFTER - 1)
    assert not node.flagged()
    await node.poll(None, after=1)
    assert node.flagged()


async def test_a_refused_bootstrap_is_withdrawn_when_a_peer_is_primary(tmp_path: Path) -> None:
    """pc.recovery completed just as the wait ran out: Galera refuses the bootstrap
    (safe_to_bootstrap 0) and the flag goes, so the next start joins."""
    node = Seed(tmp_path)
    node.port_open = True
    await node.poll(None)
    await node.poll(None, after=AFTER)
    assert node.flagged()
    node.port_open = False
    await node.poll(None, after=2)  # restarted: refused, exits, restarts again ...
    with capture_logs() as logs:
        await node.poll(None, peer={}, after=2)
    assert not node.flagged() and node.new_member()
    assert logs[-1]["event"] == "galera_recovery_bootstrap_withdrawn", logs


async def test_without_a_marker_it_says_so_and_waits(tmp_path: Path) -> None:
    node = Seed(tmp_path, marker=False)
    node.port_open = True
    await node.poll(None)
    with capture_logs() as logs:
        await node.poll(None, after=AFTER)
        await node.poll(None, after=1)
    assert [e["event"] for e in logs] == ["galera_recovery_restart_impossible"]
    assert node.text() == CONFIG and not node.events.sent


async def test_without_a_decision_nothing_happens(tmp_path: Path) -> None:
    node = Seed(tmp_path, armed=False)
    node.port_open = True
    await node.poll(None)
    await node.poll(None, after=10 * AFTER)
    assert node.text() == CONFIG


async def test_a_decision_written_after_the_sidecar_started_is_read(tmp_path: Path) -> None:
    """A native sidecar runs before init: the decision comes after its first poll."""
    node = Seed(tmp_path, armed=False)
    await node.poll(None)
    Armed(position=f"{X}:41", reason="...").write(node.path)
    node.port_open = True
    await node.poll(None, after=1)
    await node.poll(None, after=AFTER)
    assert node.flagged()


async def test_a_garbled_decision_is_said_and_never_acted_on(tmp_path: Path) -> None:
    node = Seed(tmp_path, armed=False)
    node.path.write_text("{not json")
    node.port_open = True
    with capture_logs() as logs:
        await node.poll(None)
    assert logs[0]["event"] == "galera_recovery_seed_unreadable"
    await node.poll(None, after=AFTER)
    assert node.text() == CONFIG


def test_the_options_are_added_once_to_the_galera_config_and_dropped_again(
        tmp_path: Path) -> None:
    config = CONFIG + 'wsrep_provider_options = "gcache.size=128M;evs.x=1"\n'
    (tmp_path / "galera.cnf").write_text(config)
    (tmp_path / "other.cnf").write_text("[client]\nport = 3306\n")
    assert add_restart_options(tmp_path, "why\nit is", seed_at=f"{X}:41") == ["galera.cnf"]
    text = (tmp_path / "galera.cnf").read_text()
    assert text == config + (
        "# sts-agent sidecar: why it is\n[mysqld]\n"
        'wsrep_provider_options = "gcache.size=128M;evs.x=1;pc.recovery=false"\n'
        f"wsrep-new-cluster\nwsrep_start_position = {X}:41\n")
    assert add_restart_options(tmp_path, "again") == []
    assert drop_new_cluster(tmp_path) == ["galera.cnf"]  # the flag alone, as for a vote
    assert drop_restart_options(tmp_path) == ["galera.cnf"]
    assert (tmp_path / "galera.cnf").read_text() == config
    assert (tmp_path / "other.cnf").read_text() == "[client]\nport = 3306\n"


async def test_the_group_port_probe() -> None:
    import asyncio

    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        assert await listening("127.0.0.1", port)
    assert not await listening("127.0.0.1", port)
