"""The vote-or-join start of the stores whose full outage the pods recover by their vote."""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Generic

import structlog

from agent.discovery import Peer
from agent.errors import DeadlineExceeded, KubeError
from agent.retry import Backoff, Done, Pending, poll
from agent.seed import Choice
from agent.storekit.capabilities import Rediscover
from agent.storekit.prestart import B, PrestartBase

log = structlog.get_logger("agent.init")
# The task that reads the StatefulSet while this pod's ballot is made.
READ = "statefulset_read"


@dataclass(frozen=True, slots=True)
class Start:
    """How this node starts: ``how`` is ``seed`` (the vote picked it) or the store's word
    for joining the members that run; ``joining`` their ordinals."""

    how: str
    reason: str
    choice: Choice | None = None
    joining: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Decided:
    """The start, with the peers and the kept ordinals as last seen."""

    start: Start
    peers: list[Peer]
    kept: range | None


class VotingPrestart(PrestartBase, ABC, Generic[B]):
    """Join what runs; with nothing running, every kept pod publishes its ballot (GET
    /init) and all seed the same one, or wait, or refuse (a person must choose).

    A store supplies its ballot (``own_ballot``), what runs (``running``), its vote
    (``choose``) and its words; ``decide`` is the same loop for every such store: the
    kept ordinals from the API, rediscovery while it waits, a Warning Event when the
    deadline passes or when an operator's override seeds."""

    what: ClassVar[str]  # what the loop waits for, for its deadline's message
    event_prefix: ClassVar[str]  # <prefix>StartBlocked, <prefix>SeedForced
    force_setting: ClassVar[str]  # the override's env var
    backoff: ClassVar[Backoff] = Backoff(initial_seconds=0.2, maximum_seconds=1.0)

    ballot: B | None = None
    force: int | None = None  # the override's seed ordinal

    @abstractmethod
    async def own_ballot(self) -> B:
        """This pod's ballot (its position, recovered or asked), what GET /init says."""

    async def refresh_ballot(self) -> None:
        """Called each round before the vote (a ballot that can change while init waits)."""

    @abstractmethod
    async def running(self, ordinals: Sequence[int], peers: Sequence[Peer]) -> Start | None:
        """The start that joins the members running now, or None when none runs."""

    @abstractmethod
    async def ballots(self, ordinals: Sequence[int], peers: Sequence[Peer]) -> dict[int, B]:
        """The ballots of the pods whose init answers now, this pod's included."""

    @abstractmethod
    def choose(self, ballots: dict[int, B], kept: range) -> Choice:
        """The store's vote over the kept pods' ballots (the override included)."""

    def seeding(self, choice: Choice, ballots: dict[int, B], kept: range) -> Start:
        """How the vote's seed starts: it seeds (a store may start it another way that
        brings the others up as well, the others waiting for it as for any seed)."""
        return Start("seed", choice.reason, choice)

    def seed_started(self, chosen: Choice, ballots: dict[int, B], kept: range
                     ) -> Start | None:
        """A start for this pod before the seed serves, given the ballots answering now
        (the seed's among them while its init runs); None: wait until the seed runs."""
        return None

    def waiting_for_seed(self, choice: Choice) -> str:
        return f"waiting for ordinal {choice.seed} to seed ({choice.reason})"

    def no_seed_yet(self, choice: Choice) -> str:
        return f"nothing runs, no seed yet: {choice.reason}"

    async def decide(self, peers: Sequence[Peer], *, deadline: float,
                     rediscover: Rediscover) -> Decided:
        """Join what runs, else seed when the vote says this pod; wait otherwise, until
        ``deadline`` (then a Warning Event and DeadlineExceeded)."""
        # The StatefulSet is read while this pod's ballot is made (a position recovered
        # by a subprocess, or asked of the store): the API client's import and the
        # request overlap it instead of delaying the first round.
        kept_soon = asyncio.create_task(self.kept_ordinals(), name=READ)
        try:
            self.ballot = await self.own_ballot()
        except BaseException:
            kept_soon.cancel()  # as below, after the poll
            raise
        if self.force is not None:
            log.warning(f"{self.store}_seed_forced", ordinal=self.force,
                        reason=f"{self.force_setting} is set: no vote; remove it once the "
                               "cluster is up")
        current = list(peers)
        kept: range | None = None
        chosen: Choice | None = None  # a seed this init saw chosen
        refusal: str | None = None  # a vote this init saw refused

        async def attempt() -> Done[Start] | Pending:
            nonlocal current, kept, chosen, refusal, kept_soon
            await self.refresh_ballot()
            if kept is None:
                try:
                    kept = await kept_soon
                except KubeError as exc:
                    if not exc.retryable:
                        raise
                    kept_soon = asyncio.create_task(self.kept_ordinals(),
                                                    name=READ)  # read again
                    return Pending(f"reading the StatefulSet: {exc.message}")
            ordinals = sorted({*kept, *(p.ordinal for p in current)})
            joining = await self.running(ordinals, current)
            if joining is not None:
                return Done(joining)
            ballots = await self.ballots(kept, current)
            choice = self.choose(ballots, kept)
            if choice.refused:
                # Fail closed, but keep answering: a peer still counting must see the same
                # ballots to refuse too (an init that exited takes its ballot away).
                current = await rediscover()
                refusal = (f"no safe seed: {choice.reason}; a person must pick one "
                           f"({self.force_setting})")
                return Pending(refusal)
            if refusal is not None and choice.seed is None:
                # A refusing peer's init ended (its deadline came first): what blocks the
                # start is still what it refused.
                current = await rediscover()
                return Pending(f"{refusal} (seen earlier; now {choice.reason})")
            if choice.seed == self.pod.ordinal:
                return Done(self.seeding(choice, ballots, kept))
            if choice.seed is not None:
                chosen = choice
            current = await rediscover()
            if chosen is not None:
                # Once the seed's init has ended (its ballot with it), it is starting.
                started = self.seed_started(chosen, ballots, kept)
                if started is not None:
                    return Done(started)
                return Pending(self.waiting_for_seed(chosen))
            return Pending(self.no_seed_yet(choice))

        try:
            start = await poll(attempt, what=self.what,
                               timeout_seconds=max(0.0, deadline - time.monotonic()),
                               backoff=self.backoff)
        except DeadlineExceeded as exc:
            await self.warn_event(f"{self.event_prefix}StartBlocked", exc.message)
            raise
        finally:
            kept_soon.cancel()  # a running read stops; a failed one is not logged as unseen
        if start.how == "seed" and self.force is not None:
            await self.warn_event(f"{self.event_prefix}SeedForced",
                                  f"{self.pod.name} seeds by the override "
                                  f"{self.force_setting}={self.force}: {start.reason}")
        return Decided(start, current, kept)
