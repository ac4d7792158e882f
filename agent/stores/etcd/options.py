"""etcd's own settings: the data moved aside kept on the volume."""

from __future__ import annotations

from pydantic import Field

from agent.config.base import AgentSettings


class EtcdOptions(AgentSettings):
    """What only etcd's init reads (AGENT_MOVED_ASIDE_KEEP)."""

    moved_aside_keep: int = Field(
        default=1,
        ge=1,
        description="Copies of data moved aside (etcd `member.removed-<time>`, made when "
        "a removed member comes back with its old data) kept on the volume, newest "
        "first; older ones are deleted, so scaling down and up again on a kept volume "
        "cannot fill it. The cluster holds every committed write: the copies are for "
        "forensics only.",
    )
