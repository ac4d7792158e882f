"""rqlite's own settings: the node id rqlited is given."""

from __future__ import annotations

from pydantic import Field

from agent.config.base import AgentSettings


class RqliteOptions(AgentSettings):
    """What only rqlite's init reads (AGENT_NODE_ID)."""

    node_id: str | None = Field(
        default=None,
        description="The store's id for this member (rqlite -node-id). Default: the pod "
        "name, stable across restarts; set it to the pod FQDN if rqlited uses that.",
    )
