"""Exec init work: run ``sequence``, then join a running primary or vote for the seed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import structlog

from agent.config.settings import Settings
from agent.discovery import Peer, ServiceNames
from agent.errors import ConfigError
from agent.identity import PodIdentity
from agent.seed import Choice
from agent.storekit.capabilities import Rediscover
from agent.storekit.voting import Start, VotingPrestart
from agent.stores.exec.api import peer_roles
from agent.stores.exec.contract import Role, SequenceError, parse_sequence
from agent.stores.exec.options import exec_options
from agent.stores.exec.plan import write_plan
from agent.stores.exec.runner import HookRunner
from agent.stores.exec.vote import Ballot, choose

log = structlog.get_logger("agent.exec")


class ExecPrestart(VotingPrestart[Ballot]):
    """Everything ``sts-agent init`` does for an exec store: the plan the sidecar starts
    the node by (seed, or join the primaries), decided with every kept pod."""

    store = "exec"
    reads_config = True  # the hooks (sequence) read the rendered config
    what = "a primary to join, or the vote to seed one"
    event_prefix = "Exec"
    force_setting = "AGENT_EXEC_FORCE_SEED_ORDINAL"

    def __init__(self, settings: Settings, names: ServiceNames, pod: PodIdentity,
                 client: httpx.AsyncClient) -> None:
        super().__init__(settings, names, pod)
        self.client = client
        self.hooks = HookRunner.of(settings)
        self.options = exec_options(settings)
        self.force = self.options.exec_force_seed_ordinal
        self._roles: dict[int, Role] = {}  # what the others' agents said, last round

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

    # the vote-or-join start (VotingPrestart) ----------------------------------------
    async def own_ballot(self) -> Ballot:
        return await self.sequence()

    async def refresh_ballot(self) -> None:
        if self.ballot is not None and self.ballot.sequence is None:
            self.ballot = await self.sequence()  # until it answers

    async def running(self, ordinals: Sequence[int], peers: Sequence[Peer]) -> Start | None:
        self._roles = await self.roles(ordinals, peers)
        primaries = tuple(sorted(o for o, r in self._roles.items() if r is Role.PRIMARY))
        if not primaries:
            return None
        most = self.options.exec_primaries
        if most is not None and len(primaries) >= most:
            return Start("secondary", f"{len(primaries)} primaries run "
                                      f"(AGENT_EXEC_PRIMARIES {most})", joining=primaries)
        return Start("primary", "a running primary to join", joining=primaries)

    def choose(self, ballots: dict[int, Ballot], kept: range) -> Choice:
        return choose(ballots, kept, force=self.force)

    def waiting_for_seed(self, choice: Choice) -> str:
        return (f"waiting for ordinal {choice.seed} to seed and run as primary "
                f"({choice.reason})")

    def no_seed_yet(self, choice: Choice) -> str:
        running = ", ".join(f"ordinal {o} {r}" for o, r in sorted(self._roles.items()))
        return (f"no primary running{' (' + running + ')' if running else ''}; "
                f"no seed yet: {choice.reason}")

    async def prepare(self, peers: Sequence[Peer], *, deadline: float,
                      rediscover: Rediscover) -> dict[str, Any]:
        """Join the primaries some pod runs, else seed when the vote says this pod."""
        plan_dir = self.plan_dir
        decided = await self.decide(peers, deadline=deadline, rediscover=rediscover)
        role, primaries, reason = decided.start.how, decided.start.joining, decided.start.reason
        current = decided.peers
        hosts = [host for o in primaries if (host := self.host(o, current)) is not None]
        plan = {"role": role, "primaries": hosts, "reason": reason, "pod": self.pod.name,
                "sequence": self.ballot.sequence if self.ballot else None}
        path = write_plan(plan_dir, plan)
        log.info("exec_plan", **plan, path=str(path))
        return {"exec_role": role, "exec_primaries": hosts, "exec_reason": reason}
