"""The value types every answer becomes: Member, ClusterView, Snapshot, a leave's Outcome."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True, slots=True)
class Member:
    """One server in the store's raft configuration."""

    id: str
    name: str
    address: str  # raft / peer address as the store reports it
    api_url: str | None = None  # client API base URL, when the store reports one
    voter: bool = True  # False: learner (etcd) or non-voter (rqlite)
    reachable: bool | None = None  # None: the store does not say and we did not probe


@dataclass(frozen=True, slots=True)
class ClusterView:
    """What one store node said, at one moment. Raw JSON never leaves its store folder."""

    members: tuple[Member, ...]
    leader_id: str | None
    self_id: str | None
    applied_index: int | None = None  # this node's applied raft index
    commit_index: int | None = None  # the leader's commit index (best known)
    version: str | None = None
    notes: tuple[str, ...] = field(default=())  # what the backend could not learn, and why
    # When this node's store process started (epoch seconds), where the store says
    # (rqlite's /status): a hand-off prefers the voter that started last.
    started_at: float | None = None
    # A store's own readiness checks (Galera: Primary, Synced): (name, why it fails, or
    # None when it passes), judged with the shared ones.
    checks: tuple[tuple[str, str | None], ...] = field(default=())
    # What else the store says of itself (Galera: cluster size, state, last committed);
    # numbers are exported as metrics too.
    details: tuple[tuple[str, str | int], ...] = field(default=())

    @property
    def self_member(self) -> Member | None:
        return self.member(self.self_id) if self.self_id is not None else None

    @property
    def leader(self) -> Member | None:
        return self.member(self.leader_id) if self.leader_id is not None else None

    def member(self, member_id: str) -> Member | None:
        return next((m for m in self.members if m.id == member_id), None)

    def detail(self, name: str) -> str | int | None:
        """One of the store's details by name (None when it did not say it)."""
        return dict(self.details).get(name)

    @property
    def voters(self) -> tuple[Member, ...]:
        return tuple(m for m in self.members if m.voter)

    @property
    def leads(self) -> bool:
        """Whether the node that answered is the leader (its view is membership's truth)."""
        return self.leader_id is not None and self.leader_id == self.self_id

    @property
    def lag(self) -> int | None:
        """Entries this node has yet to apply, when both indexes are known."""
        if self.applied_index is None or self.commit_index is None:
            return None
        return max(0, self.commit_index - self.applied_index)

    def as_dict(self) -> dict[str, Any]:
        return {
            "members": [
                {"id": m.id, "name": m.name, "address": m.address, "api_url": m.api_url,
                 "voter": m.voter, "reachable": m.reachable}
                for m in self.members
            ],
            "leader_id": self.leader_id,
            "self_id": self.self_id,
            "applied_index": self.applied_index,
            "commit_index": self.commit_index,
            "lag": self.lag,
            "version": self.version,
            "notes": list(self.notes),
            **({"checks": {name: why or "ok" for name, why in self.checks}}
               if self.checks else {}),
            **({"details": dict(self.details)} if self.details else {}),
        }


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The outcome of the sidecar's latest poll, plus what is remembered from earlier ones."""

    local: ClusterView | None = None  # last successful read of this pod's store
    local_ok_at: float | None = None  # monotonic time of that read
    local_error: str | None = None  # error of the latest read, if it failed
    authority: ClusterView | None = None  # the leader's own view (membership truth)
    authority_source: str | None = None  # "local", "leader" or "peer <url>"
    leader_error: str | None = None  # why the leader could not be read, if so
    self_id: str | None = None  # this node's id, remembered across store outages
    polled_at: float | None = None
    poll_seconds: float | None = None
    # The leader's commit index as read before this poll's local read (the previous
    # poll's), so writes committed between the two reads never count as lag.
    earlier_commit: int | None = None

    @property
    def leader_commit(self) -> int | None:
        """The commit index this node's applied index is measured against: the leader's,
        read before the local read (the same read when this node leads); the current
        one only when there is no earlier (conservative: it can only overstate lag)."""
        if self.authority is None:
            return None
        if self.earlier_commit is not None:
            return self.earlier_commit
        return self.authority.commit_index

    @property
    def lag(self) -> int | None:
        """Entries this node has yet to apply of those the leader had committed."""
        commit = self.leader_commit
        applied = self.local.applied_index if self.local is not None else None
        if commit is None or applied is None:
            return None
        return max(0, commit - applied)

    def as_dict(self) -> dict[str, Any]:
        return {
            "local": self.local.as_dict() if self.local else None,
            "local_error": self.local_error,
            "authority": self.authority.as_dict() if self.authority else None,
            "authority_source": self.authority_source,
            "leader_error": self.leader_error,
            "self_id": self.self_id,
            "lag": self.lag,
            "poll_seconds": self.poll_seconds,
        }


LeaveResult = Literal["removed", "stayed", "failed"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a leave ended. ``stayed``: the pod is not going away for good."""

    result: LeaveResult
    reason: str
    took_seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {"result": self.result, "reason": self.reason,
                "took_seconds": round(self.took_seconds, 3)}
