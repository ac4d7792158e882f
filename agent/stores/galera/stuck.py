"""A node stuck outside the Primary component while a peer is in it, marked for a restart."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from agent.atomic import write_atomically
from agent.stores.galera.status import peer_primary

if TYPE_CHECKING:
    from pathlib import Path

    from agent.leave import Events
    from agent.model import Snapshot
    from agent.stores.galera.status import GaleraStatus

log = structlog.get_logger("agent.galera")


@dataclass(frozen=True, slots=True)
class Marked:
    """The incarnation the marker was written for: its group id, its uptime then, why."""

    gcomm_uuid: str
    uptime: int
    reason: str

    def gone(self, own: GaleraStatus) -> bool:
        """Whether ``own`` is another mariadbd than the marked one: another group id, or
        an uptime below the marked one's (a Disconnected node may show no group id)."""
        return own.gcomm_uuid != self.gcomm_uuid or own.uptime < self.uptime


class StuckMember:
    """Writes ``marker`` when this node has *answered* outside the Primary component
    (non-Primary, Disconnected) at every poll for ``after_seconds`` while a peer answers
    as a member of a Primary component of the same history: the mariadbd container's
    liveness probe (``test ! -e <marker>``) fails and the kubelet restarts it; the new
    mariadbd joins that component by IST or a full copy. Nothing committed is lost: a
    node outside the Primary component commits nothing, and the component it rejoins
    runs without it.

    Never otherwise: a node that does not answer (a joiner receiving a full copy, a
    mariadbd starting) or is in a Primary component restarts the count; with no Primary
    component elsewhere (a full outage, a partition with no majority) or one of another
    history, the node is left alone and the log says why. The marker is removed once the
    node it was written for is gone (another group id or a lower uptime, or no answer),
    and at the agent's start: the agent down never restarts mariadbd."""

    def __init__(self, marker: Path, *, after_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.marker = marker
        self.after_seconds = after_seconds
        self.clock = clock
        self.since: float | None = None  # first poll of the current streak outside
        self.marked: Marked | None = None
        self.restarts = 0
        self._cleared_at_start = False
        self._held: str | None = None  # why a stuck node is left alone, said once

    async def on_poll(self, snapshot: Snapshot, own: GaleraStatus | None,
                      events: Events | None) -> None:
        """One poll's look: count the streak, write or remove the marker."""
        if not self._cleared_at_start:
            self._cleared_at_start = True
            self._remove("a marker left by an earlier agent: the count starts again")
        answered = snapshot.local_error is None and own is not None
        if self.marked is not None:
            if not answered or own is None or self.marked.gone(own):
                self.restarts += 1
                self.marked = None
                self.since = None
                self._remove("the node it was written for is gone (restarted)")
                log.info("galera_member_restarted", restarts=self.restarts)
            return
        if not answered or own is None or own.cluster_status == "Primary":
            self.since, self._held = None, None
            return
        now = self.clock()
        if self.since is None:
            self.since = now
        outside = now - self.since
        if outside < self.after_seconds:
            return
        held = self._held_because(snapshot, own)
        if held is not None:
            if held != self._held:
                log.warning("galera_member_stuck_left_alone", outside_seconds=round(outside),
                            cluster_status=own.cluster_status, why=held)
            self._held = held
            return
        peer = snapshot.authority_source or "a peer"
        reason = (f"this node has answered {own.cluster_status} (outside the Primary "
                  f"component) for {outside:.0f} s while {peer.removeprefix('peer ')} is "
                  "Primary: restarting mariadbd (its liveness probe) to join again")
        try:
            write_atomically(self.marker.parent, self.marker.name,
                             (reason + "\n").encode("utf-8"))
        except OSError as exc:
            if self._held is None or not self._held.startswith("cannot write"):
                log.warning("galera_member_restart_unmarked", marker=str(self.marker),
                            error=str(exc), why="mount the marker's directory writable "
                            "in the agent's container")
            self._held = f"cannot write {self.marker}"
            return
        self.marked = Marked(gcomm_uuid=own.gcomm_uuid, uptime=own.uptime, reason=reason)
        log.warning("galera_member_restart", outside_seconds=round(outside, 1),
                    cluster_status=own.cluster_status, primary=peer,
                    marker=str(self.marker))
        if events is not None:
            await events.event(reason="GaleraMemberRestarted", message=reason, warning=True)

    def _held_because(self, snapshot: Snapshot, own: GaleraStatus) -> str | None:
        """Why a node outside the Primary component is not restarted now, or None."""
        if not peer_primary(snapshot):
            return "no peer answers as a member of a Primary component (an outage or a " \
                   "partition: a restart would not help)"
        assert snapshot.authority is not None  # a peer answered
        history = snapshot.authority.detail("state_uuid")
        if not own.state_uuid or history != own.state_uuid:
            return (f"the Primary component's history {history} is not this node's "
                    f"({own.state_uuid or 'none'}): joining it would replace this node's "
                    "data by a full copy")
        return None

    def _remove(self, why: str) -> None:
        try:
            self.marker.unlink()
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning("galera_restart_marker_kept", marker=str(self.marker),
                        error=str(exc), why=why)
            return
        log.info("galera_restart_marker_removed", marker=str(self.marker), why=why)
