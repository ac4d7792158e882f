"""Galera's own settings: recovery command, forced seed, restarts."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from agent.config.base import AgentSettings


class GaleraOptions(AgentSettings):
    """What only Galera's init and sidecar read (AGENT_GALERA_*)."""

    galera_recover_command: str = Field(
        default="mariadbd --user=mysql --wsrep-provider=/usr/lib/galera/libgalera_smm.so",
        description="Galera: the command init runs, with --datadir=<AGENT_DATA_DIR> "
        "--wsrep-on=ON --skip-networking --wsrep-recover --log-error=<file> (and what "
        "mariadbd checks first) appended, to read a crashed node's position from InnoDB "
        "(grastate.dat says -1 after any crash).",
    )
    galera_force_seed_ordinal: int | None = Field(
        default=None,
        ge=0,
        description="Galera: seed a new Primary component from this ordinal without the "
        "vote (every pod's ballot, a missing pod waited for): for a person who knows "
        "which volume holds the latest writes. Remove it once the cluster is up: a "
        "later outage would seed this ordinal again, whatever it holds.",
    )
    galera_drain_seconds: float = Field(
        default=2.0,
        ge=0,
        description="Galera: how long mariadbd keeps serving after its pod turned unready "
        "and before its SIGTERM, on a restart and on a departure (the store container's "
        "preStop holds it): the Service's endpoints drop the terminating pod (kube-proxy "
        "syncs about once a second), clients move to the other members and the writes in "
        "flight on this one commit, instead of failing on a lost connection. Bounded by "
        "the leave's deadline; 0: no drain.",
    )
    galera_restart_marker: Path | None = Field(
        default=None,
        description="Galera: a file the sidecar creates when mariadbd must be restarted "
        "(stuck outside the Primary component while a peer is in it, see "
        "AGENT_GALERA_RESTART_NON_PRIMARY_SECONDS) and removes once it was; the mariadbd "
        "container's liveness probe fails while it exists (`test ! -e <file>`), so the "
        "kubelet restarts mariadbd and it joins again. Removed at the sidecar's start: "
        "the agent down never restarts mariadbd. Unset: never.",
    )
    galera_restart_non_primary_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Galera: how long mariadbd must have answered outside the Primary "
        "component (non-Primary, Disconnected) at every poll, while a peer answers as a "
        "member of a Primary component of the same history, before the sidecar creates "
        "AGENT_GALERA_RESTART_MARKER (a Warning Event `GaleraMemberRestarted`). A node that "
        "does not answer (receiving a full copy) never counts.",
    )
    galera_recovery_bootstrap_seconds: float = Field(
        default=20.0,
        gt=0,
        description="Galera: after a full outage where every pod's gvwstate.dat holds the "
        "same last Primary view, the vote's seed starts without bootstrapping and Galera "
        "re-forms that view once all members are back (pc.recovery, no state transfer). "
        "If the seed's mariadbd has waited this long (its group port open, no SQL yet) "
        "and no peer is Primary, its sidecar adds wsrep-new-cluster to init's config and "
        "creates AGENT_GALERA_RESTART_MARKER: mariadbd restarts and seeds (a Warning Event "
        "`GaleraRecoveryBootstrapped`); a member still missing joins later.",
    )
