"""The poll loop: reads the store and its leader into a snapshot; readiness answered from it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog

from agent.errors import BackendError, BackendUnavailable
from agent.metrics import Metrics
from agent.model import ClusterView, Snapshot
from agent.readiness import Policy, Verdict, judge
from agent.survey import Leader, leader_through, try_view

log = structlog.get_logger("agent.membership")


class ViewSource(Protocol):
    """What the poll loop needs of a backend."""

    async def view(self, api_url: str | None = None) -> ClusterView: ...


@dataclass
class Probe:
    """A pre-serialised readiness answer and when it must be recomputed."""

    status: int
    body: bytes
    generation: int
    fresh_until: float


class Membership:
    """Owns the snapshot: ``run`` refreshes it, ``readiness`` answers from it."""

    def __init__(
        self,
        backend: ViewSource,
        *,
        policy: Policy,
        poll_interval_seconds: float,
        poll_timeout_seconds: float,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        request_timeout_seconds: float | None = None,
        seed_urls: Sequence[str] = (),
        on_poll: Callable[[Snapshot], Awaitable[None]] | None = None,
    ) -> None:
        self.seed_urls = list(seed_urls)
        self.on_poll = on_poll
        self.backend = backend
        # One store read, whatever httpx's per-phase timeouts add up to; a poll makes at
        # most four rounds of them, so a slow leader cannot time the whole poll out.
        self.request_timeout_seconds = request_timeout_seconds or poll_timeout_seconds / 4
        self.policy = policy
        self.poll_interval_seconds = poll_interval_seconds
        self.poll_timeout_seconds = poll_timeout_seconds
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.snapshot = Snapshot()
        self.leaving = False
        self.heartbeat: float = clock()
        self.generation = 0
        self.polls = 0
        self._probe: Probe | None = None
        self._last_leader: str | None = None
        self._peer_urls: dict[str, str] = {}
        self._changed = asyncio.Event()
        self._last_reasons: tuple[str, ...] | None = None

    # --- reading the store ---------------------------------------------------------

    async def _authority_via_peers(self, self_id: str | None) -> tuple[ClusterView | None, str]:
        """The leader's view found through any peer we know, when ours cannot give it."""
        urls = [url for member_id, url in sorted(self._peer_urls.items()) if member_id != self_id]
        urls += [url for url in self.seed_urls if url not in urls]
        found = await leader_through(self.view_at, urls)
        return (found.view, found.via) if isinstance(found, Leader) else (None, found)

    async def view_at(self, url: str | None) -> ClusterView:
        """One store node's view (this pod's when ``url`` is None), within the request
        timeout whatever httpx's per-phase timeouts add up to."""
        try:
            async with asyncio.timeout(self.request_timeout_seconds):
                return await self.backend.view(url)
        except TimeoutError:
            raise BackendUnavailable(
                f"{url or 'local store'}: no answer within {self.request_timeout_seconds}s"
            ) from None

    async def poll_once(self) -> Snapshot:
        """Read the local store, then the leader's view; never raises for store trouble."""
        started = self.clock()
        previous = self.snapshot
        local: ClusterView | None = None
        local_error: str | None = None
        try:
            local = await self.view_at(None)
        except BackendUnavailable as exc:
            local_error = exc.message
            self.metrics.store_errors.labels(kind="unavailable").inc()
        except BackendError as exc:
            local_error = f"unusable answer: {exc.message}"
            self.metrics.store_errors.labels(kind="bad_answer").inc()

        self_id = local.self_id if local is not None else previous.self_id
        authority: ClusterView | None = None
        source: str | None = None
        leader_error: str | None = None
        if local is not None:
            for member in local.members:
                if member.api_url:
                    self._peer_urls[member.id] = member.api_url
            if local.leader_id is not None and local.leader_id == local.self_id:
                authority, source = local, "local"
            elif local.leader_id is not None:
                leader = local.leader
                if leader is None or not leader.api_url:
                    # An etcd learner cannot list members: find the leader through peers.
                    found, how = await self._authority_via_peers(self_id)
                    if found is not None and found.self_id == local.leader_id:
                        authority, source = found, how
                    else:
                        leader_error = "is not in this node's member list"
                else:
                    result = await try_view(self.view_at, leader.api_url)
                    if isinstance(result, str):
                        leader_error = f"does not answer ({result})"
                        self.metrics.store_errors.labels(kind="leader_unreachable").inc()
                    elif result.leader_id != result.self_id:
                        leader_error = "no longer leads (election in progress)"
                    else:
                        authority, source = result, "leader"
        if authority is None:
            found, how = await self._authority_via_peers(self_id)
            if found is not None:
                authority, source = found, how

        # Lag is the leader's commit read *before* our applied index: the previous poll's
        # (a leader's own view holds both at once). Read after, every write committed in
        # between would count as lag and a busy follower would flap out of endpoints.
        earlier_commit = None
        if authority is not None and source == "local":
            earlier_commit = authority.commit_index
        elif previous.authority is not None and local is not None:
            earlier_commit = previous.authority.commit_index
        now = self.clock()
        self.snapshot = Snapshot(
            local=local if local is not None else previous.local,
            local_ok_at=now if local is not None else previous.local_ok_at,
            local_error=local_error,
            authority=authority,
            authority_source=source,
            leader_error=leader_error,
            self_id=self_id,
            polled_at=now,
            poll_seconds=now - started,
            earlier_commit=earlier_commit,
        )
        self._observe(self.snapshot)
        return self.snapshot

    def _observe(self, snapshot: Snapshot) -> None:
        self.generation += 1
        self.polls += 1
        self._probe = None
        metrics = self.metrics
        if snapshot.poll_seconds is not None:
            metrics.poll_seconds.observe(snapshot.poll_seconds)
        view = snapshot.authority or snapshot.local
        if view is not None:
            metrics.members.set(len(view.members))
            metrics.voters.set(len(view.voters))
        if snapshot.local is not None:
            for name, value in snapshot.local.details:
                if isinstance(value, int):
                    metrics.detail.labels(detail=name).set(value)
        leader_id = view.leader_id if view is not None else None
        if leader_id is not None and leader_id != self._last_leader:
            if self._last_leader is not None:
                metrics.leader_changes.inc()
            log.info("leader_observed", leader=leader_id, previous=self._last_leader)
            self._last_leader = leader_id
        verdict = self.verdict()
        metrics.ready.set(1 if verdict.ready else 0)
        for check in verdict.checks:
            metrics.check.labels(check=check.name).set(1 if check.ok else 0)
        lag = snapshot.lag
        metrics.lag.set(-1 if lag is None else lag)
        self._changed.set()

    # --- answering -----------------------------------------------------------------

    def verdict(self, now: float | None = None) -> Verdict:
        return judge(self.snapshot, now=self.clock() if now is None else now,
                     policy=self.policy, leaving=self.leaving)

    def readiness(self) -> tuple[int, bytes]:
        """(HTTP status, JSON body) for /readyz; recomputed only when it can change."""
        now = self.clock()
        probe = self._probe
        if probe is None or probe.generation != self.generation or now > probe.fresh_until:
            verdict = self.verdict(now)
            ok_at = self.snapshot.local_ok_at
            # The only input that changes without a poll is the staleness of the last read.
            fresh_until = (ok_at + self.policy.stale_after_seconds
                           if ok_at is not None and now <= ok_at + self.policy.stale_after_seconds
                           else float("inf"))
            probe = Probe(status=200 if verdict.ready else 503,
                          body=json.dumps(verdict.as_dict()).encode(),
                          generation=self.generation, fresh_until=fresh_until)
            self._probe = probe
        return probe.status, probe.body

    def clear_leaving(self) -> None:
        """Readiness may pass again (the leave ended in "stayed")."""
        if self.leaving:
            self.leaving = False
            self.generation += 1

    def set_leaving(self) -> None:
        """Readiness fails from now on (the leave procedure has started)."""
        if not self.leaving:
            self.leaving = True
            self.generation += 1
            self.metrics.check.labels(check="not_leaving").set(0)
            self.metrics.ready.set(0)

    def alive(self, liveness_timeout_seconds: float) -> tuple[bool, float]:
        """Whether the loop ticked recently, and how long ago it did."""
        age = self.clock() - self.heartbeat
        return age <= liveness_timeout_seconds, age

    async def wait_for_poll(self) -> None:
        """Wait for the next completed poll."""
        self._changed.clear()
        await self._changed.wait()

    # --- the loop ------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until ``stop`` is set; store trouble is recorded, never raised."""
        log.info("poll_loop_start", interval_s=self.poll_interval_seconds)
        while not stop.is_set():
            self.heartbeat = self.clock()
            try:
                async with asyncio.timeout(self.poll_timeout_seconds):
                    snapshot = await self.poll_once()
                    if self.on_poll is not None:
                        await self.on_poll(snapshot)
                verdict = self.verdict()
                self._log_transition(verdict, snapshot)
            except TimeoutError:
                self.metrics.store_errors.labels(kind="unavailable").inc()
                log.warning("poll_timeout", timeout_s=self.poll_timeout_seconds)
            except Exception:  # a bug must not stop the probe loop; it is logged and counted
                self.metrics.store_errors.labels(kind="internal").inc()
                log.exception("poll_failed")
            self.heartbeat = self.clock()
            try:
                async with asyncio.timeout(self.poll_interval_seconds):
                    await stop.wait()
            except TimeoutError:
                pass
        log.info("poll_loop_stop", polls=self.polls)

    def _log_transition(self, verdict: Verdict, snapshot: Snapshot) -> None:
        reasons = tuple(verdict.reasons)
        if reasons != self._last_reasons:
            log.info("readiness_changed", ready=verdict.ready, reasons=list(reasons),
                     self_id=snapshot.self_id, authority=snapshot.authority_source)
            self._last_reasons = reasons

