"""Galera init work: recover the position, then join a Primary component or vote for a seed."""

from __future__ import annotations

import asyncio
import shlex
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
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
)
from agent.identity import PodIdentity
from agent.retry import Backoff
from agent.seed import Choice
from agent.storekit.capabilities import Rediscover
from agent.storekit.voting import Start, VotingPrestart
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
    read_gvwstate,
    read_saved,
    save,
    write_atomically,
)
from agent.stores.galera.recovery import RECOVERY_SEED, Armed
from agent.stores.galera.vote import Ballot, choose, restorable

log = structlog.get_logger("agent.galera")

RECOVERY_LOG = "sts-agent-wsrep-recovery.log"
RECOVERY_TIMEOUT_SECONDS = 120.0  # InnoDB crash recovery of a large redo log
# A peer named as a donor has run this long: well past its own state transfer.
DONOR_SETTLED_SECONDS = 30
RECOVER = "recover"  # the seed's start when pc.recovery re-forms the last view
# The pc.recovery seed's init answers with its decision until the others' inits have
# ended, at most this long (a peer's init that hangs).
HOLD_SECONDS = 10.0


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


def recover_command(recover: str, data_dir: Path) -> list[str]:
    """``recover`` (AGENT_GALERA_RECOVER_COMMAND) with what recovery needs whatever the
    image's config says: wsrep on (else it skips recovery), the settings mariadbd checks
    before it (a cluster address for the SST method, row binlogs), and no network (a
    running peer's port is no concern). Its socket and pid file in the data dir: never a
    running server's. Its temporary files there too: the init container's root filesystem
    is read-only, and /tmp is part of it. Its log in RECOVERY_LOG."""
    return [*shlex.split(recover), f"--datadir={data_dir}", "--wsrep-on=ON",
            "--wsrep-cluster-address=gcomm://", "--binlog-format=ROW", "--skip-networking",
            f"--tmpdir={data_dir}", f"--socket={data_dir / 'sts-agent-recover.sock'}",
            f"--pid-file={data_dir / 'sts-agent-recover.pid'}", "--wsrep-recover",
            f"--log-error={data_dir / RECOVERY_LOG}"]


class GaleraPrestart(VotingPrestart[Ballot]):
    """Everything ``sts-agent init`` does for Galera before mariadbd starts."""

    store = "galera"
    what = "a Primary component to join, or the vote to seed one"
    event_prefix = "Galera"
    force_setting = "AGENT_GALERA_FORCE_SEED_ORDINAL"
    # A round is a few local connections: look often, so a joiner starts soon after the
    # seed is Primary (the whole cluster is down meanwhile).
    backoff = Backoff(initial_seconds=0.1, maximum_seconds=0.5)

    def __init__(self, settings: Settings, names: ServiceNames, pod: PodIdentity,
                 client: httpx.AsyncClient) -> None:
        super().__init__(settings, names, pod)
        self.client = client
        self.credentials = Credentials.of(settings)
        self.options = settings.options(GaleraOptions)
        self.force = self.options.galera_force_seed_ordinal
        self.position: Position | None = None  # recovered at the start of prepare
        self.donor = ""  # the donors named for a join (wsrep_sst_donor)
        self.seen: dict[int, Ballot] = {}  # the last ballot seen of each pod, this init

    @property
    def data_dir(self) -> Path:
        if self.settings.data_dir is None:
            raise ConfigError("galera: AGENT_DATA_DIR must name mariadbd's datadir (init "
                              "reads and keeps the node's position there)")
        return self.settings.data_dir

    def has_state(self) -> bool:
        data_dir = self.settings.data_dir
        return data_dir is not None and (data_dir / "grastate.dat").exists()

    @property
    def armed_path(self) -> Path | None:
        """Where init tells the sidecar it is the fallback seed of a pc.recovery start."""
        out = self.settings.output_dir
        return out / RECOVERY_SEED if out is not None else None

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
        command = recover_command(self.options.galera_recover_command, data_dir)
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
        """The ballots of the pods whose init answers now, this pod's included (each also
        kept in ``seen``)."""
        assert self.ballot is not None
        found = await self.ballots_of(self.client, ordinals, peers, Ballot.from_dict,
                                      self.ballot)
        self.seen.update(found)
        return found

    # the vote-or-join start (VotingPrestart) ----------------------------------------
    async def own_ballot(self) -> Ballot:
        self.position, safe = await self.recover()
        view = read_gvwstate(self.data_dir)
        log.info("galera_saved_view", view=view.view if view else None,
                 members=len(view.members) if view else 0)
        return Ballot.of(self.pod.ordinal, self.position, safe,
                         data=(self.data_dir / "ibdata1").exists(), view=view)

    async def running(self, ordinals: Sequence[int], peers: Sequence[Peer]) -> Start | None:
        running = await self.running_peers(ordinals, peers)
        if any(s.get("wsrep_cluster_status") == "Primary" for s in running.values()):
            self.donor = donors(running, self.pod.statefulset)
            return Start("join", "a peer is in a Primary component")
        if running and self.force is None:
            # A member kept running outside any Primary component (its peers died). It
            # cannot vote, and only a bootstrap can lose writes: start and join it. Galera
            # re-forms the last Primary component (pc.recovery) once all of its members
            # are back.
            names = ", ".join(f"{self.pod.statefulset}-{o}" for o in sorted(running))
            return Start("join", f"{names} running outside a Primary component: joining, "
                                 "never bootstrapping")
        return None

    def choose(self, ballots: dict[int, Ballot], kept: range) -> Choice:
        """A peer that seeds by pc.recovery (its ballot says so) is followed. Else, when
        the ballots seen in this init show that Galera can re-form the last Primary
        component itself (``restorable``), the vote over those; else the vote over the
        ballots answering now."""
        leading = [b for o, b in sorted(ballots.items())
                   if o != self.pod.ordinal and o in kept and b.decided == RECOVER]
        if leading and self.force is None:
            return Choice(leading[0].ordinal, f"ordinal {leading[0].ordinal} starts first "
                                              "for pc.recovery")
        why = self.restorable(kept)
        if why is None:
            return choose(ballots, kept, force=self.force)
        choice = choose(self.seen, kept)
        return Choice(choice.seed, f"{choice.reason}; {why}")

    def restorable(self, kept: range) -> str | None:
        """Why pc.recovery re-forms the last view, from every ballot seen (a ballot never
        changes: a position moves only in a Primary component, and none runs); None
        when it cannot, or the operator's override is set (that always bootstraps)."""
        return restorable(self.seen, kept) if self.force is None else None

    def seeding(self, choice: Choice, ballots: dict[int, Ballot], kept: range) -> Start:
        """The seed starts without bootstrapping when Galera can re-form the last
        Primary component itself: every node starts with its recovered position, and
        ``pc.recovery`` promotes the view once all are back, with no state transfer. Its
        sidecar bootstraps the component it is in only if that never happens
        (``RecoverySeed``)."""
        why = self.restorable(kept)
        if why is None:
            return super().seeding(choice, ballots, kept)
        return Start(RECOVER, f"{choice.reason}, the fallback seed", choice)

    def seed_started(self, chosen: Choice, ballots: dict[int, Ballot], kept: range
                     ) -> Start | None:
        """A joiner of a pc.recovery start goes as soon as the seed's ballot says it
        decided: a restored node answers no SQL until the view re-forms, which needs
        every member, so waiting for the seed to serve would wait for ever."""
        seed = ballots.get(chosen.seed) if chosen.seed is not None else None
        if seed is None or seed.decided != RECOVER or self.force is not None:
            return None
        return Start("join", f"ordinal {chosen.seed} starts first for pc.recovery and "
                             "this node joins it")

    async def hold_ballot(self, peers: Sequence[Peer], kept: range | None) -> None:
        """The pc.recovery seed's init answers with its decision until every other kept
        pod's init has ended (each follows it once it has read it: a joiner that missed
        it would wait for SQL the restored seed does not answer), for at most
        ``HOLD_SECONDS``."""
        assert self.ballot is not None
        self.ballot = replace(self.ballot, decided=RECOVER)
        others = [o for o in (kept or ()) if o != self.pod.ordinal]
        started = time.monotonic()
        waiting: list[int] = others
        while waiting and time.monotonic() - started < HOLD_SECONDS:
            await asyncio.sleep(self.backoff.initial_seconds)
            found = await self.ballots(others, peers)
            waiting = [o for o in others if o in found]
        log.info("galera_recovery_decided", followed_by=[o for o in others
                                                         if o not in waiting],
                 still_waiting=waiting, held_s=round(time.monotonic() - started, 3))

    def waiting_for_seed(self, choice: Choice) -> str:
        return (f"waiting for ordinal {choice.seed} to seed a Primary component "
                f"({choice.reason})")

    def no_seed_yet(self, choice: Choice) -> str:
        return f"no Primary component, no seed yet: {choice.reason}"

    async def prepare(self, peers: Sequence[Peer], *, deadline: float,
                      rediscover: Rediscover) -> dict[str, Any]:
        """Recover, then join a Primary component or seed one as the vote says."""
        armed = self.armed_path
        if armed is not None:
            armed.unlink(missing_ok=True)  # an earlier init's: this one decides anew
        decided = await self.decide(peers, deadline=deadline, rediscover=rediscover)
        state, reason = decided.start.how, decided.start.reason
        if state == RECOVER:
            await self.hold_ballot(decided.peers, decided.kept)
        position, current, expected, donor = (self.position, decided.peers, decided.kept,
                                              self.donor)
        new_cluster = state == "seed"
        if position is not None and position.known:
            # Galera starts from the position in grastate.dat (as from
            # --wsrep-start-position): a joiner then catches up by IST, not a full copy.
            # A crash rewrites it to -1 again, so a later start never trusts a stale one.
            # The pc.recovery seed may bootstrap too, should the view never re-form (its
            # sidecar then asks for it): Galera writes 0 once it is in a Primary
            # component, and then refuses, so it never seeds beside one.
            wanted = GraState(position.uuid, position.seqno, new_cluster or state == RECOVER)
            if read_grastate(self.data_dir) != wanted:
                write_atomically(self.data_dir / "grastate.dat", wanted.text())
        if state == RECOVER and position is not None:
            if armed is None:
                log.warning("galera_recovery_fallback_unarmed", why="AGENT_OUTPUT_DIR is "
                            "unset: the sidecar cannot restart mariadbd if pc.recovery "
                            "never completes")
            else:
                Armed(position=str(position), reason=reason).write(armed)
        log.info("galera_plan", state=state, reason=reason, node=self.pod.name,
                 start_position=str(position) if position and position.known else None,
                 donors=donor or None)
        hosts = [host for o in sorted({*(expected or ()), *(p.ordinal for p in current)})
                 if (host := self.host(o, current)) is not None]
        return {
            "galera_state": state,
            "galera_new_cluster": new_cluster,
            "galera_reason": f"{state}: {reason}",
            "galera_start_position": str(position) if position and position.known else "",
            "galera_cluster_address": "gcomm://" + ",".join(
                f"{h}:{self.peer_port}" for h in hosts),
            "galera_node_address": self.host(self.pod.ordinal, current) or "",
            "galera_donors": donor,
        }
