"""A start by pc.recovery: the vote's seed bootstraps if the last view never re-forms."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from agent.atomic import write_atomically
from agent.stores.galera.bootstrap import add_restart_options, drop_restart_options
from agent.stores.galera.status import peer_primary

if TYPE_CHECKING:
    from agent.leave import Events
    from agent.model import Snapshot
    from agent.stores.galera.status import GaleraStatus

log = structlog.get_logger("agent.galera")

# In AGENT_OUTPUT_DIR: written by init, read and removed by the sidecar.
RECOVERY_SEED = "sts-agent-recovery.json"


@dataclass(frozen=True, slots=True)
class Armed:
    """Init started mariadbd, the vote's seed, for pc.recovery at ``position``, and why."""

    position: str
    reason: str

    def write(self, path: Path) -> None:
        body = json.dumps({"position": self.position, "reason": self.reason}) + "\n"
        write_atomically(path.parent, path.name, body.encode("utf-8"))

    @classmethod
    def read(cls, path: Path) -> Armed | None:
        """The decision; None when there is none (or it is not one init wrote: said in
        the log, never acted on)."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            return cls(str(raw["position"]), str(raw["reason"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("galera_recovery_seed_unreadable", path=str(path), error=str(exc),
                        why="not acted on: pc.recovery or a person forms the component")
            return None


async def listening(host: str, port: int, *, timeout_seconds: float = 0.5) -> bool:
    """Whether something accepts a TCP connection at ``host:port`` (mariadbd's group
    port: a restored node waits there, and answers no SQL until the view re-forms)."""
    try:
        async with asyncio.timeout(timeout_seconds):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return True


class RecoverySeed:
    """The vote's seed started mariadbd without bootstrapping, for Galera to re-form the
    last Primary component by itself once every member is back (``pc.recovery``); until
    then a restored mariadbd answers no SQL, only its group port. If it has waited so
    for ``after_seconds`` and no peer answers as a member of a Primary component (a
    member never came back), the sidecar adds ``wsrep-new-cluster``, its position and
    ``pc.recovery=false`` to init's config (a new group id: the restored members merge
    with a node they do not hold as the one of their saved view) and writes the restart
    marker: the kubelet restarts mariadbd, which seeds, and the restored members join
    it; the missing one joins later. Once per decision, which is removed once any
    Primary component is seen; the marker goes once the mariadbd it was written for has
    stopped; the added options go once another member has joined.

    Never two Primary components: after the outage only pc.recovery (which needs every
    member of the saved view, the seed included) and the seed can form one, and init
    let the seed bootstrap (``safe_to_bootstrap: 1``) only until it is in a Primary
    component: Galera then writes 0 and refuses. A refused bootstrap (a peer Primary
    while this node is not) takes the options out again: the next start joins."""

    def __init__(self, path: Path, *, config_dir: Path, marker: Path | None,
                 group: tuple[str, int] | None, after_seconds: float,
                 probe: Callable[[str, int], Awaitable[bool]] = listening,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.config_dir = config_dir
        self.marker = marker
        self.group = group
        self.after_seconds = after_seconds
        self.probe = probe
        self.clock = clock
        self.armed: Armed | None = None
        self.loaded: tuple[float, int] | None = None  # the decision file last read
        self.since: float | None = None  # first poll of the current wait
        self.marked = False  # the marker written: watching the restart it asked for
        self.changed: str | None = None  # init's config changed: "seed", then "join"
        self._said: str | None = None

    async def on_poll(self, snapshot: Snapshot, own: GaleraStatus | None,
                      events: Events | None) -> None:
        """One poll's look: drop the decision, wait, or have mariadbd restarted."""
        if self.armed is None:
            self._load()
        if self.marked:
            await self._watch_restart(own)
        primary = own is not None and own.cluster_status == "Primary"
        peer = peer_primary(snapshot)
        if self.changed is not None:
            await self._watch_config(own, primary, peer, snapshot)
        if self.armed is None:
            return
        if primary:
            assert own is not None
            self._disarm("this node is in a Primary component", cluster_size=own.cluster_size)
            return
        if peer:
            self._disarm(f"{snapshot.authority_source} answers as a member of a Primary "
                         "component: this node joins it")
            return
        waiting = own is None and self.group is not None and await self.probe(*self.group)
        now = self.clock()
        if not waiting:
            self.since = None  # mariadbd starting, down, or answering outside the view
            return
        if self.since is None:
            self.since = now
        waited = now - self.since
        if waited < self.after_seconds:
            return
        await self._restart(
            f"no Primary component formed in {waited:.0f} s after the outage (a member of the "
            "saved view is missing): restarting mariadbd to seed one from this node, which "
            f"holds the latest position {self.armed.position} (the vote's seed); the "
            "missing member joins it later", waited, events)

    async def _restart(self, reason: str, waited: float, events: Events | None) -> None:
        assert self.armed is not None
        if self.marker is None:
            self._say("no AGENT_GALERA_RESTART_MARKER: the sidecar cannot have mariadbd "
                      "restarted; pc.recovery waits for every member")
            return
        try:
            files = await asyncio.to_thread(add_restart_options, self.config_dir, reason,
                                            seed_at=self.armed.position)
            write_atomically(self.marker.parent, self.marker.name,
                             (reason + "\n").encode("utf-8"))
        except OSError as exc:
            self._say(f"cannot change init's config or write {self.marker}: {exc}")
            return
        self.marked, self.changed = True, "seed"
        log.warning("galera_recovery_bootstrap", waited_seconds=round(waited, 1),
                    files=files, marker=str(self.marker), why=reason)
        self._disarm("mariadbd restarts to seed")
        if events is not None:
            await events.event(reason="GaleraRecoveryBootstrapped", message=reason,
                               warning=True)

    async def _watch_restart(self, own: GaleraStatus | None) -> None:
        """The marker goes once the mariadbd it was written for has stopped: its group
        port closed, or a new one answers."""
        assert self.marker is not None
        if own is None and self.group is not None and await self.probe(*self.group):
            return
        self.marked = False
        self.marker.unlink(missing_ok=True)
        log.info("galera_restart_marker_removed", marker=str(self.marker),
                 why="the restored mariadbd has stopped")

    async def _watch_config(self, own: GaleraStatus | None, primary: bool, peer: bool,
                            snapshot: Snapshot) -> None:
        """The added options go once this node is Primary with another member (alone,
        a restart of its mariadbd seeds the same history again). Not Primary while a
        peer is (its bootstrap refused): the next start joins instead, as a new member."""
        if self.marked:
            return
        if primary and own is not None and (self.changed == "join" or own.cluster_size > 1):
            self.changed = None
            files = await asyncio.to_thread(drop_restart_options, self.config_dir)
            log.info("galera_recovery_options_dropped", files=files,
                     cluster_size=own.cluster_size)
        elif self.changed == "seed" and not primary and peer:
            self.changed = "join"
            await asyncio.to_thread(drop_restart_options, self.config_dir)
            files = await asyncio.to_thread(
                add_restart_options, self.config_dir,
                f"{snapshot.authority_source} is in a Primary component and this node is "
                "not (its bootstrap refused): the next start joins")
            log.warning("galera_recovery_bootstrap_withdrawn", files=files,
                        primary=snapshot.authority_source)

    def _load(self) -> None:
        """Init's decision, when it has written one not read yet: a native sidecar
        starts before init, so the file may come after the first poll."""
        try:
            stat = self.path.stat()
        except OSError:
            return
        if (stat.st_mtime, stat.st_size) == self.loaded:
            return
        self.loaded = (stat.st_mtime, stat.st_size)
        self.armed = Armed.read(self.path)
        if self.armed is not None:
            log.info("galera_recovery_armed", position=self.armed.position,
                     after_seconds=self.after_seconds, reason=self.armed.reason)

    def _disarm(self, why: str, **keys: object) -> None:
        """Never act on this decision again: it is removed (a later sidecar neither)."""
        self.armed = None
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("galera_recovery_seed_kept", path=str(self.path), error=str(exc))
        log.info("galera_recovery_disarmed", why=why, **keys)

    def _say(self, why: str) -> None:
        if why != self._said:
            log.warning("galera_recovery_restart_impossible", why=why)
        self._said = why
