"""Galera init work: recover the position, then join a Primary component or vote for a seed."""

from __future__ import annotations

import asyncio
import shlex
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import structlog

from agent.config.settings import Settings
from agent.discovery import Peer, ServiceNames
from agent.errors import (
    BackendError,
    BackendUnavailable,
    ConfigError,
    DeadlineExceeded,
    KubeError,
)
from agent.identity import PodIdentity
from agent.retry import Backoff, Done, Pending, poll
from agent.seed import Choice
from agent.storekit.capabilities import Rediscover
from agent.storekit.prestart import PrestartBase
from agent.stores.galera.client import Credentials, Endpoint, wsrep_status
from agent.stores.galera.options import GaleraOptions
from agent.stores.galera.position import (
    GVWSTATE,
    GraState,
    Position,
    PositionUnreadable,
    best_known,
    empty_gvwstate,
    parse_recovered,
    read_grastate,
    read_saved,
    save,
    write_atomically,
)
from agent.stores.galera.vote import Ballot, choose

log = structlog.get_logger("agent.galera")

RECOVERY_LOG = "sts-agent-wsrep-recovery.log"
RECOVERY_TIMEOUT_SECONDS = 120.0  # InnoDB crash recovery of a large redo log
# A peer named as a donor has run this long: well past its own state transfer.
DONOR_SETTLED_SECONDS = 30


def donors(running: Mapping[int, Mapping[str, str]], statefulset: str) -> str:
    """``wsrep_sst_donor`` for a joiner: the Synced Primary peers that have run for
    ``DONOR_SETTLED_SECONDS``, the longest running first (when none has, the longest
    running one), then any node (the trailing comma); "" when no peer is Synced.

    Among the nodes able to send an IST Galera takes the one with the shortest gcache:
    with no list, that is a peer that has only just caught up itself, and galera
    26.4.23 (Debian 12's) can send an IST from one that lacks the last write set
    (MDEV-36621); the joiner then stays out of the Primary component. The trailing
    comma keeps a way in when every named peer is gone: the rendered config outlives
    them (a container restart does not run init again)."""
    def uptime(status: Mapping[str, str]) -> int:
        try:
            return int(status.get("Uptime", "0"))
        except ValueError:
            return 0

    synced = sorted(((uptime(status), ordinal) for ordinal, status in running.items()
                     if status.get("wsrep_cluster_status") == "Primary"
                     and status.get("wsrep_local_state_comment") == "Synced"),
                    key=lambda pair: (-pair[0], pair[1]))
    settled = [pair for pair in synced if pair[0] >= DONOR_SETTLED_SECONDS] or synced[:1]
    return "".join(f"{statefulset}-{ordinal}," for _, ordinal in settled)


class GaleraPrestart(PrestartBase):
    """Everything ``sts-agent init`` does for Galera before mariadbd starts."""

    store = "galera"

    def __init__(self, settings: Settings, names: ServiceNames, pod: PodIdentity,
                 client: httpx.AsyncClient) -> None:
        super().__init__(settings, names, pod)
        self.client = client
        self.credentials = Credentials.of(settings)
        self.options = settings.options(GaleraOptions)
        self.ballot: Ballot | None = None  # set once the position is recovered

    @property
    def data_dir(self) -> Path:
        if self.settings.data_dir is None:
            raise ConfigError("galera: AGENT_DATA_DIR must name mariadbd's datadir (init "
                              "reads and keeps the node's position there)")
        return self.settings.data_dir

    def has_state(self) -> bool:
        data_dir = self.settings.data_dir
        return data_dir is not None and (data_dir / "grastate.dat").exists()

    def init_document(self) -> dict[str, Any]:
        return {"has_state": self.has_state(),
                "ballot": self.ballot.as_dict() if self.ballot is not None else None}

    # position ------------------------------------------------------------------------
    async def recover(self) -> tuple[Position | None, bool]:
        """This node's position and whether Galera marked it safe to bootstrap, kept on
        the volume before anything can start mariadbd."""
        data_dir = self.data_dir
        if empty_gvwstate(data_dir):
            (data_dir / GVWSTATE).unlink()
            log.warning("galera_empty_gvwstate_removed", path=str(data_dir / GVWSTATE),
                        reason="an empty gvwstate.dat stops mariadbd from joining")
        try:
            grastate = read_grastate(data_dir)
            saved = read_saved(data_dir)
        except PositionUnreadable as exc:
            raise BackendError(f"galera: {exc}") from None
        recovered = None
        if (grastate is None or not grastate.position.known) and (data_dir / "ibdata1").exists():
            recovered = await self._wsrep_recover(data_dir)
        position = best_known(grastate, recovered, saved)
        safe = bool(grastate and grastate.safe_to_bootstrap and position is not None
                    and grastate.position == position)
        log.info("galera_position", position=str(position) if position else None,
                 grastate=str(grastate.position) if grastate else None,
                 recovered=str(recovered) if recovered else None,
                 saved=str(saved) if saved else None, safe_to_bootstrap=safe)
        if position is not None and position.known and position != saved:
            save(data_dir, position)
        return position, safe

    async def _wsrep_recover(self, data_dir: Path) -> Position | None:
        """``mariadbd --wsrep-recover``: the position InnoDB holds, from its log."""
        logfile = data_dir / RECOVERY_LOG
        # What recovery needs whatever the image's config says: wsrep on (else it skips
        # recovery), the settings mariadbd checks before it (a cluster address for the
        # SST method, row binlogs), and no network (a running peer's port is no concern).
        # Its socket and pid file in the data dir: never a running server's.
        command = [*shlex.split(self.options.galera_recover_command),
                   f"--datadir={data_dir}", "--wsrep-on=ON", "--wsrep-cluster-address=gcomm://",
                   "--binlog-format=ROW", "--skip-networking",
                   f"--socket={data_dir / 'sts-agent-recover.sock'}",
                   f"--pid-file={data_dir / 'sts-agent-recover.pid'}", "--wsrep-recover",
                   f"--log-error={logfile}"]
        logfile.unlink(missing_ok=True)
        started = time.monotonic()
        try:
            process = await asyncio.create_subprocess_exec(
                *command, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        except OSError as exc:
            raise ConfigError(f"galera: cannot run AGENT_GALERA_RECOVER_COMMAND "
                              f"{command[0]!r}: {exc.strerror}") from None
        try:
            async with asyncio.timeout(RECOVERY_TIMEOUT_SECONDS):
                _, stderr = await process.communicate()
        except TimeoutError:
            process.kill()
            await process.wait()
            raise BackendError(f"galera: {shlex.join(command)} did not finish in "
                               f"{RECOVERY_TIMEOUT_SECONDS:g} s") from None
        try:
            text = logfile.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            text = ""
        position = parse_recovered(text + stderr.decode(errors="replace"))
        log.info("galera_wsrep_recover", exit_code=process.returncode,
                 took_s=round(time.monotonic() - started, 3),
                 position=str(position) if position else None)
        if position is None:
            tail = " | ".join((text or stderr.decode(errors="replace")).splitlines()[-3:])
            if process.returncode != 0:
                # Not "no position": recovery did not run. Publishing an unknown position
                # would make every peer refuse; this init fails and is retried instead.
                raise BackendError(f"galera: {shlex.join(command)} exited "
                                   f"{process.returncode}: {tail}")
            log.warning("galera_wsrep_recover_found_nothing", exit_code=process.returncode,
                        log=tail)
        return position

    # peers ---------------------------------------------------------------------------
    async def running_peers(self, ordinals: Sequence[int], peers: Sequence[Peer]
                            ) -> dict[int, dict[str, str]]:
        """The wsrep status of every other pod whose mariadbd answers now."""
        asked = [(o, host) for o in ordinals if o != self.pod.ordinal
                 and (host := self.host(o, peers)) is not None]

        async def status(host: str) -> dict[str, str] | None:
            try:
                return await wsrep_status(Endpoint(host=host, port=self.client_port),
                                          self.credentials,
                                          timeout_seconds=self.settings.store_timeout_seconds)
            except BackendUnavailable:
                return None

        found = await asyncio.gather(*(status(host) for _, host in asked))
        return {o: answer for (o, _), answer in zip(asked, found, strict=True)
                if answer is not None}

    async def ballots(self, ordinals: Sequence[int], peers: Sequence[Peer]) -> dict[int, Ballot]:
        """The ballots of the pods whose init answers now, this pod's included."""
        assert self.ballot is not None
        return await self.ballots_of(self.client, ordinals, peers, Ballot.from_dict,
                                     self.ballot)

    # the decision --------------------------------------------------------------------
    async def prepare(self, peers: Sequence[Peer], *, deadline: float,
                      rediscover: Rediscover) -> dict[str, Any]:
        """Recover, then join a Primary component or seed one as the vote says."""
        position, safe = await self.recover()
        self.ballot = Ballot.of(self.pod.ordinal, position, safe,
                                data=(self.data_dir / "ibdata1").exists())
        current = list(peers)
        expected: range | None = None
        force = self.options.galera_force_seed_ordinal
        if force is not None:
            log.warning("galera_seed_forced", ordinal=force,
                        reason="AGENT_GALERA_FORCE_SEED_ORDINAL is set: no vote; remove it "
                               "once the cluster is up")

        refusal: str | None = None
        donor = ""

        async def attempt() -> Done[tuple[str, Choice | None]] | Pending:
            nonlocal current, expected, refusal, donor
            if expected is None:
                try:
                    expected = await self.kept_ordinals()
                except KubeError as exc:
                    if not exc.retryable:
                        raise
                    return Pending(f"reading the StatefulSet: {exc.message}")
            ordinals = sorted({*expected, *(p.ordinal for p in current)})
            running = await self.running_peers(ordinals, current)
            if any(s.get("wsrep_cluster_status") == "Primary" for s in running.values()):
                donor = donors(running, self.pod.statefulset)
                return Done(("join", None))
            if running and force is None:
                # A member kept running outside any Primary component (its peers died).
                # It cannot vote, and only a bootstrap can lose writes: start and join
                # it. Galera re-forms the last Primary component (pc.recovery) once all
                # of its members are back.
                names = ", ".join(f"{self.pod.statefulset}-{o}" for o in sorted(running))
                return Done(("join", Choice(None, f"{names} running outside a Primary "
                                                  "component: joining, never bootstrapping")))
            choice = choose(await self.ballots(expected, current), expected, force=force)
            if choice.refused:
                # Fail closed, but keep answering: a peer still counting must see the same
                # ballots to refuse too (an init that exited takes its ballot away).
                current = await rediscover()
                refusal = (f"no safe seed: {choice.reason}; a person must pick one "
                           "(AGENT_GALERA_FORCE_SEED_ORDINAL)")
                return Pending(refusal)
            if refusal is not None and choice.seed is None:
                # A refusing peer's init ended (its deadline came first): what blocks the
                # start is still what it refused.
                current = await rediscover()
                return Pending(f"{refusal} (seen earlier; now {choice.reason})")
            if choice.seed == self.pod.ordinal:
                return Done(("seed", choice))
            current = await rediscover()
            if choice.seed is None:
                return Pending(f"no Primary component, no seed yet: {choice.reason}")
            return Pending(f"waiting for ordinal {choice.seed} to seed a Primary component "
                           f"({choice.reason})")

        try:
            state, choice = await poll(
                attempt, what="a Primary component to join, or the vote to seed one",
                timeout_seconds=max(0.0, deadline - time.monotonic()),
                # A round is a few local connections: look often, so a joiner starts soon
                # after the seed is Primary (the whole cluster is down meanwhile).
                backoff=Backoff(initial_seconds=0.1, maximum_seconds=0.5))
        except DeadlineExceeded as exc:
            await self.warn_event("GaleraStartBlocked", exc.message)
            raise
        if state == "seed" and force is not None:
            await self.warn_event("GaleraSeedForced", f"{self.pod.name} seeds a new Primary "
                                                 f"component by the override: {choice.reason}"
                             if choice else "seeded by the override")
        new_cluster = state == "seed"
        if position is not None and position.known:
            # Galera starts from the position in grastate.dat (as from
            # --wsrep-start-position): a joiner then catches up by IST, not a full copy.
            # A crash rewrites it to -1 again, so a later start never trusts a stale one.
            wanted = GraState(position.uuid, position.seqno, new_cluster)
            if read_grastate(self.data_dir) != wanted:
                write_atomically(self.data_dir / "grastate.dat", wanted.text())
        log.info("galera_plan", state=state, reason=choice.reason if choice else
                 "a peer is in a Primary component", node=self.pod.name,
                 start_position=str(position) if position and position.known else None,
                 donors=donor or None)
        hosts = [host for o in sorted({*(expected or ()), *(p.ordinal for p in current)})
                 if (host := self.host(o, current)) is not None]
        return {
            "galera_state": state,
            "galera_new_cluster": new_cluster,
            "galera_reason": f"{state}: " + (choice.reason if choice is not None
                                             else "a peer is in a Primary component"),
            "galera_start_position": str(position) if position and position.known else "",
            "galera_cluster_address": "gcomm://" + ",".join(
                f"{h}:{self.peer_port}" for h in hosts),
            "galera_node_address": self.host(self.pod.ordinal, current) or "",
            "galera_donors": donor,
        }
