"""rqlite before it starts: new, restarting or joining, and which stale entry to drop first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from agent.model import Member


@dataclass(frozen=True, slots=True)
class RqlitePlan:
    """How this node starts: ``state`` for the templates, ``remove`` stale entries first.

    rqlited does the join itself from its ``-join`` flags (8.x joins even with old raft
    state, so a removed node that returns with its data is taken back); init only makes
    sure nothing stale stands in the way and that the cluster can take a new voter.
    """

    state: Literal["new", "restart", "join", "wait"]
    remove: tuple[str, ...]
    reason: str


def same_address(reported: str, ours: str) -> bool:
    """Whether the raft address a node advertised is ours: the same, or our FQDN written
    relative to the pod's DNS search path (``rqlite-0.rqlite:4002``)."""
    host, _, port = reported.rpartition(":")
    own_host, _, own_port = ours.rpartition(":")
    host, own_host = host.rstrip(".").lower(), own_host.rstrip(".").lower()
    return port == own_port and bool(host) and (host == own_host
                                                or own_host.startswith(host + "."))


def plan_start(
    *,
    node_id: str,
    raft_address: str,
    members: Sequence[Member] | None,
    has_state: bool,
    bootstrap_member: bool,
    formed_at: str | None = None,
    bootstrap_blocker: str | None,
) -> RqlitePlan:
    """Decide how this rqlite node starts.

    ``members`` is the leader's configuration, or None when no peer knows a leader;
    ``has_state`` whether the data dir holds raft state; ``bootstrap_member`` whether
    this pod is one of the bootstrap ordinals (the first bootstrap_expect); ``formed_at``
    a peer that answered with raft state although no leader was found (a cluster exists
    and is electing, or lost its quorum); ``bootstrap_blocker`` why bootstrapping is not
    proven safe (``quorum.bootstrap_blocker``), None when every other bootstrap member
    said it has no raft state. An entry
    "is us" when it has our id, or our raft address under another id (a node id changed
    in the manifest).
    """
    if members is None:
        if has_state:
            return RqlitePlan("restart", (), "no leader answers; restarting from this "
                                             "node's raft state")
        if formed_at is not None:
            # A cluster exists but has no leader (an election, or no quorum). This node
            # has no log and no vote record: bootstrapping or joining now could make it a
            # voter under an entry the cluster still lists, and its vote could elect a
            # leader that misses committed writes. Only a leader can drop that entry.
            return RqlitePlan("wait", (), f"peer {formed_at} has raft state but knows no "
                                          f"leader: {node_id} has no state and is waiting "
                                          "for a leader (no bootstrap, no rejoin as a voter "
                                          "before a leader drops its old entry)")
        if bootstrap_member and bootstrap_blocker is not None:
            return RqlitePlan("wait", (), f"{node_id} has no raft state and no leader "
                                          f"answers; not bootstrapping: {bootstrap_blocker}")
        if bootstrap_member:
            return RqlitePlan("new", (), "no cluster yet and no bootstrap member has raft "
                                         "state: bootstrapping with the others")
        return RqlitePlan("wait", (), f"no cluster answers yet and {node_id} is not a "
                                      "bootstrap member: waiting for a leader")
    same_id = [m for m in members if m.id == node_id]
    other_id_here = [m for m in members
                     if m.id != node_id and same_address(m.address, raft_address)]
    stale = [m.id for m in other_id_here]
    if same_id and has_state:
        if not same_address(same_id[0].address, raft_address):
            return RqlitePlan("join", tuple(stale), f"member {node_id} moved from "
                              f"{same_id[0].address}: rqlite replaces it on join")
        return RqlitePlan("restart", tuple(stale), f"restart of member {node_id}: no "
                                                   "membership change")
    if same_id:
        # The volume is gone but the configuration still counts this node as a voter:
        # drop the entry so it does not vote with a forgotten log, then join anew.
        return RqlitePlan("join", (node_id, *stale), f"member {node_id} lost its raft "
                          "state: removing its entry and joining anew")
    if has_state:
        return RqlitePlan("join", tuple(stale), f"{node_id} was removed and returns with "
                          "its raft state: joining again")
    return RqlitePlan("join", tuple(stale), "joining the running cluster")
