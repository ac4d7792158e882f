"""The poll loop: reads the store(s) into a snapshot and turns it into a readiness verdict."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from agent.backends.base import ClusterView
from agent.errors import AgentError, BackendError, BackendUnavailable
from agent.metrics import Metrics

log = structlog.get_logger("agent.membership")


class ViewSource(Protocol):
    """What the poll loop needs of a backend."""

    async def view(self, api_url: str | None = None) -> ClusterView: ...


@dataclass(frozen=True, slots=True)
class Check:
    """One readiness condition and, when it fails, why."""

    name: str
    ok: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Verdict:
    """All checks; ready when every one passes."""

    checks: tuple[Check, ...]

    @property
    def ready(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def reasons(self) -> list[str]:
        return [check.reason for check in self.checks if not check.ok]

    def as_dict(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "checks": [{"name": c.name, "ok": c.ok, "reason": c.reason} for c in self.checks],
        }


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The outcome of the latest poll, plus what is remembered from earlier ones."""

    local: ClusterView | None = None  # last successful read of this pod's store
    local_ok_at: float | None = None  # monotonic time of that read
    local_error: str | None = None  # error of the latest read, if it failed
    authority: ClusterView | None = None  # the leader's own view (membership truth)
    authority_source: str | None = None  # "local", "leader" or "peer <url>"
    leader_error: str | None = None  # why the leader could not be read, if so
    self_id: str | None = None  # this node's id, remembered across store outages
    polled_at: float | None = None
    poll_seconds: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "local": self.local.as_dict() if self.local else None,
            "local_error": self.local_error,
            "authority": self.authority.as_dict() if self.authority else None,
            "authority_source": self.authority_source,
            "leader_error": self.leader_error,
            "self_id": self.self_id,
            "poll_seconds": self.poll_seconds,
        }


@dataclass
class Policy:
    """The knobs of the verdict."""

    stale_after_seconds: float = 5.0
    max_lag_entries: int = 100
    accept_learner: bool = False


def judge(snapshot: Snapshot, *, now: float, policy: Policy, leaving: bool) -> Verdict:
    """Readiness from a snapshot: pure, so every branch is unit-tested."""
    local = snapshot.local
    fresh = snapshot.local_ok_at is not None and (
        now - snapshot.local_ok_at <= policy.stale_after_seconds
    )
    if snapshot.local_ok_at is None:
        reachable = Check("store_reachable", False,
                          f"store unreachable: {snapshot.local_error or 'not polled yet'}")
    elif not fresh:
        reachable = Check("store_reachable", False,
                          f"store unreachable for {now - snapshot.local_ok_at:.1f}s: "
                          f"{snapshot.local_error or 'no poll since'}")
    else:
        reachable = Check("store_reachable", True)

    if local is None or not fresh:
        leader = Check("leader_known", False, "no leader known: store unreachable")
    elif local.leader_id is None:
        leader = Check("leader_known", False, "no leader")
    elif snapshot.leader_error is not None:
        leader = Check("leader_known", False,
                       f"no leader: leader {local.leader_id} {snapshot.leader_error}")
    else:
        leader = Check("leader_known", True)

    authority = snapshot.authority
    self_id = snapshot.self_id
    if self_id is None:
        member = Check("member", False, "membership unknown: store never answered")
    elif authority is None:
        member = Check("member", False, "membership unknown: no leader to ask")
    else:
        me = authority.member(self_id)
        if me is None:
            member = Check("member", False, f"not a member: {self_id} is not in the "
                                            "leader's configuration")
        elif not me.voter and not policy.accept_learner:
            member = Check("member", False, f"not a voter: {self_id} is a learner")
        else:
            member = Check("member", True)

    commit = authority.commit_index if authority is not None else None
    applied = local.applied_index if local is not None and fresh else None
    if applied is None or commit is None:
        why = (local.notes[0] if local is not None and fresh and local.notes
               else "no applied or commit index")
        caught_up = Check("caught_up", False, f"catch-up unknown: {why}")
    elif commit - applied > policy.max_lag_entries:
        caught_up = Check("caught_up", False,
                          f"catching up: {commit - applied} entries behind the leader "
                          f"(max {policy.max_lag_entries})")
    else:
        caught_up = Check("caught_up", True)

    not_leaving = Check("not_leaving", not leaving, "leaving the cluster" if leaving else "")
    return Verdict((reachable, leader, member, caught_up, not_leaving))


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
        if not urls:
            return None, "no known peers to ask"
        results = await asyncio.gather(*(self._try_view(url) for url in urls))
        for url, result in zip(urls, results, strict=True):
            if not isinstance(result, ClusterView) or result.leader_id is None:
                continue
            if result.leader_id == result.self_id:
                return result, f"peer {url}"
            leader = result.leader
            if leader is not None and leader.api_url:
                leader_view = await self._try_view(leader.api_url)
                if isinstance(leader_view, ClusterView):
                    return leader_view, f"leader {leader.api_url} via peer {url}"
        return None, "no peer knows a reachable leader"

    async def _view(self, url: str | None) -> ClusterView:
        try:
            async with asyncio.timeout(self.request_timeout_seconds):
                return await self.backend.view(url)
        except TimeoutError:
            raise BackendUnavailable(
                f"{url or 'local store'}: no answer within {self.request_timeout_seconds}s"
            ) from None

    async def _try_view(self, url: str) -> ClusterView | str:
        try:
            return await self._view(url)
        except AgentError as exc:
            return exc.message

    async def poll_once(self) -> Snapshot:
        """Read the local store, then the leader's view; never raises for store trouble."""
        started = self.clock()
        previous = self.snapshot
        local: ClusterView | None = None
        local_error: str | None = None
        try:
            local = await self._view(None)
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
                    result = await self._try_view(leader.api_url)
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
        lag = None
        if snapshot.local is not None and snapshot.authority is not None:
            if (snapshot.local.applied_index is not None
                    and snapshot.authority.commit_index is not None):
                lag = max(0, snapshot.authority.commit_index - snapshot.local.applied_index)
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

