"""rqlite's own settings: the node id rqlited is given, the stalled follower's hand-off."""

from __future__ import annotations

from pydantic import Field

from agent.config.base import AgentSettings


class RqliteOptions(AgentSettings):
    """What only rqlite reads: its init (AGENT_NODE_ID), its sidecar (the stall hand-off)."""

    node_id: str | None = Field(
        default=None,
        description="The store's id for this member (rqlite -node-id). Default: the pod "
        "name, stable across restarts; set it to the pod FQDN if rqlited uses that.",
    )
    rqlite_stall_hand_off_seconds: float = Field(
        default=0.0,
        ge=0,
        description="A voter that has applied nothing for this long while it lags the "
        "leader (the leader not sending to it: after a restart hashicorp/raft may wait "
        "out a 10 s dial to the pod's old address, or its back-off) asks the leader to "
        "hand leadership to another voter, whose replication starts afresh; once per "
        "stall. A leader change instead of the wait: writes pause for the hand-off. A "
        "node receiving a snapshot also applies nothing until it is in: keep this above "
        "the time the largest snapshot takes, or one transfer starts over. 0: never.",
    )
