"""Exec init work: run ``sequence``, then join a running primary or vote for the seed."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import structlog

from agent.config.settings import Settings
from agent.discovery import Peer, ServiceNames
from agent.errors import ConfigError, DeadlineExceeded, KubeError
from agent.identity import PodIdentity
from agent.retry import Backoff, Done, Pending, poll
from agent.seed import Choice
from agent.storekit.capabilities import Rediscover
from agent.storekit.prestart import PrestartBase
from agent.stores.exec.api import peer_roles
from agent.stores.exec.contract import Role, SequenceError, parse_sequence
from agent.stores.exec.options import exec_options
from agent.stores.exec.plan import write_plan
from agent.stores.exec.runner import HookRunner
from agent.stores.exec.vote import Ballot, choose

log = structlog.get_logger("agent.exec")


class ExecPrestart(PrestartBase):
    """Everything ``sts-agent init`` does for an exec store: the plan the sidecar starts
    the node by (seed, or join the primaries), decided with every kept pod."""

    store = "exec"

    def __init__(self, settings: Settings, names: ServiceNames, pod: PodIdentity,
                 client: httpx.AsyncClient) -> None:
        super().__init__(settings, names, pod)
        self.client = client
        self.hooks = HookRunner.of(settings)
        self.options = exec_options(settings)
        self.ballot: Ballot | None = None

    @property
    def plan_dir(self) -> Path:
        if self.settings.output_dir is None:
            raise ConfigError("exec: AGENT_OUTPUT_DIR must name a volume the store's "
                              "container mounts too (init leaves its plan there)")
        return self.settings.output_dir

    def has_state(self) -> bool:
        return self.ballot is not None and bool(self.ballot.sequence)

    def init_document(self) -> dict[str, Any]:
        return {"has_state": self.has_state(),
                "ballot": self.ballot.as_dict() if self.ballot is not None else None}

    async def sequence(self) -> Ballot:
        """This pod's ballot: what ``sequence`` printed, or why it gave nothing."""
        result = await self.hooks.run("sequence", self.hooks.hooks.sequence)
        try:
            ballot = Ballot(self.pod.ordinal, parse_sequence(result))
        except SequenceError as exc:
            ballot = Ballot(self.pod.ordinal, None, str(exc))
        if ballot != self.ballot:
            log.info("exec_sequence", sequence=ballot.sequence, problem=ballot.problem)
        return ballot

    async def roles(self, ordinals: Sequence[int], peers: Sequence[Peer]) -> dict[int, Role]:
        """What the other pods' agents say their nodes are, where one answers."""
        asked = [(o, self.url(host, self.settings.listen_address()[1]))
                 for o in ordinals if o != self.pod.ordinal
                 and (host := self.host(o, peers)) is not None]
        found = await peer_roles(self.client, [url for _, url in asked])
        return {o: r for (o, _), r in zip(asked, found, strict=True) if r is not None}

    async def ballots(self, ordinals: Sequence[int], peers: Sequence[Peer]) -> dict[int, Ballot]:
        """The ballots of the pods whose init answers now, this pod's included."""
        assert self.ballot is not None
        return await self.ballots_of(self.client, ordinals, peers, Ballot.from_dict,
                                     self.ballot)

    async def prepare(self, peers: Sequence[Peer], *, deadline: float,
                      rediscover: Rediscover) -> dict[str, Any]:
        """Join the primaries some pod runs, else seed when the vote says this pod."""
        plan_dir = self.plan_dir
        self.ballot = await self.sequence()
        current = list(peers)
        expected: range | None = None
        chosen: Choice | None = None  # a seed this init saw chosen
        force = self.options.exec_force_seed_ordinal
        if force is not None:
            log.warning("exec_seed_forced", ordinal=force,
                        reason="AGENT_EXEC_FORCE_SEED_ORDINAL is set: no vote; remove it "
                               "once the cluster is up")

        async def attempt() -> Done[tuple[str, list[int], str]] | Pending:
            nonlocal current, expected, chosen
            if self.ballot is not None and self.ballot.sequence is None:
                self.ballot = await self.sequence()  # until it answers
            if expected is None:
                try:
                    expected = await self.kept_ordinals()
                except KubeError as exc:
                    if not exc.retryable:
                        raise
                    return Pending(f"reading the StatefulSet: {exc.message}")
            ordinals = sorted({*expected, *(p.ordinal for p in current)})
            roles = await self.roles(ordinals, current)
            primaries = sorted(o for o, r in roles.items() if r is Role.PRIMARY)
            if primaries:
                most = self.options.exec_primaries
                if most is not None and len(primaries) >= most:
                    return Done(("secondary", primaries, f"{len(primaries)} primaries run "
                                                         f"(AGENT_EXEC_PRIMARIES {most})"))
                return Done(("primary", primaries, "a running primary to join"))
            choice = choose(await self.ballots(expected, current), expected, force=force)
            if choice.seed == self.pod.ordinal:
                return Done(("seed", [], choice.reason))
            if choice.seed is not None:
                chosen = choice
            current = await rediscover()
            if chosen is not None and chosen.seed is not None:
                # The seed's init ended (its ballot with it): it is starting.
                return Pending(f"waiting for ordinal {chosen.seed} to seed and run as "
                               f"primary ({chosen.reason})")
            running = ", ".join(f"ordinal {o} {r}" for o, r in sorted(roles.items()))
            return Pending(f"no primary running{' (' + running + ')' if running else ''}; "
                           f"no seed yet: {choice.reason}")

        try:
            role, primaries, reason = await poll(
                attempt, what="a primary to join, or the vote to seed one",
                timeout_seconds=max(0.0, deadline - time.monotonic()),
                backoff=Backoff(initial_seconds=0.2, maximum_seconds=1.0))
        except DeadlineExceeded as exc:
            await self.warn_event("ExecStartBlocked", exc.message)
            raise
        if role == "seed" and force is not None:
            await self.warn_event("ExecSeedForced", f"{self.pod.name} seeds by the override "
                                                    f"AGENT_EXEC_FORCE_SEED_ORDINAL={force}")
        hosts = [host for o in primaries if (host := self.host(o, current)) is not None]
        plan = {"role": role, "primaries": hosts, "reason": reason, "pod": self.pod.name,
                "sequence": self.ballot.sequence if self.ballot else None}
        path = write_plan(plan_dir, plan)
        log.info("exec_plan", **plan, path=str(path))
        return {"exec_role": role, "exec_primaries": hosts, "exec_reason": reason}
