"""Galera's own settings: the recovery command, a forced seed, the state transfer method."""

from __future__ import annotations

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
    galera_sst_method: str = Field(
        default="rsync",
        description="Galera: the wsrep_sst_method the pods use; a donor counts as ready "
        "only when it does not block writes while it copies (mariabackup).",
    )
