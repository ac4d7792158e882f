"""The quorum rules of membership changes, for every store: one place, no I/O.

A raft configuration change commits only when a majority of the voters of the
configuration that results acknowledges it, and after it the cluster keeps committing only
while a majority of its remaining voters answer. Each rule returns why a change would be
unsafe now, or None when it is safe.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence

from agent.model import ClusterView, Member

# A hand-off target chosen by its start may lag the most caught-up voter by this many
# entries: about ten seconds of a busy cluster's writes, far more than a Ready member.
HAND_OFF_LAG = 1000


def majority(voters: int) -> int:
    """The smallest majority of ``voters``."""
    return voters // 2 + 1


def quorum_for_add(members: Sequence[Member], answering: Collection[str]) -> str | None:
    """Why adding a member (voter or learner) now would be unsafe, or None.

    A learner does not count towards quorum, but the add itself must commit: the started
    voters that answer must be a majority of the voters.
    """
    voters = [m for m in members if m.voter]
    started = [m for m in voters if m.id in answering]
    needed = majority(len(voters))
    if len(started) < needed:
        return (f"only {len(started)} of {len(voters)} voters answer; {needed} needed "
                "before a member can be added")
    return None


def quorum_for_removal(view: ClusterView, self_id: str, answering: Collection[str],
                       departing: Collection[str] = ()) -> str | None:
    """Why removing ``self_id`` now would be unsafe, or None when it is safe.

    ``view`` is the leader's own view; ``answering`` the ids of members that answered;
    ``departing`` the other members that are leaving too (a parallel scale-down), which
    are counted as gone already. After the removals the remaining voters that answer
    must be a majority of the remaining voters, or the cluster could not commit.
    """
    if view.leader_id is None:
        return "no leader"
    me = view.member(self_id)
    if me is None:
        return None  # already gone: nothing to guard
    if not me.voter:
        return None  # a learner / non-voter never counts towards quorum
    gone = {self_id, *departing}
    remaining = [m for m in view.voters if m.id not in gone]
    if not remaining:
        return "this is the last voter; removing it would leave no cluster"
    up = [m for m in remaining if m.id in answering]
    needed = majority(len(remaining))
    if len(up) < needed:
        return (f"only {len(up)} of the {len(remaining)} remaining voters answer; "
                f"{needed} are needed for quorum after the removal")
    return None


def successor(view: ClusterView, self_id: str,
              answering: Collection[str] | Mapping[str, int | None],
              departing: Collection[str] = (), *,
              started: Mapping[str, float | None] | None = None) -> Member | None:
    """The voter a leaving or restarting leader hands leadership to: answering, not
    itself, and not departing too (a parallel scale-down would make it hand off again,
    one more election).

    Where the stores say when each started (``started``, rqlite), the voter whose store
    started last: hashicorp/raft's transport reuses pooled connections without a retry,
    so a target holding one to a peer that has restarted since (opened while it waited
    for a leader after its own restart, say) loses that peer's vote at once and the
    hand-off ends in a second election; every connection the last started voter holds
    was opened after all its peers' last starts. Only among those within HAND_OFF_LAG
    entries of the most caught-up one: a node the leader is not sending to (back on a
    new address, say) would fail the hand-off by never catching up. Otherwise, when
    ``answering`` maps ids to applied indexes, the voter that has applied most (raft
    makes the target catch up before it takes over, so the most caught-up one takes over
    soonest; one of unknown progress comes after those known; ties go to the first in
    the configuration's order).
    None when no such voter: the leader then steps down as raft does when it removes
    itself."""
    candidates = [m for m in view.voters if m.id != self_id and m.id in answering
                  and m.id not in departing]
    if not candidates:
        return None
    applied = answering if isinstance(answering, Mapping) else {}
    best = max((a for m in candidates if (a := applied.get(m.id)) is not None), default=None)
    dated = {m.id: when for m in candidates
             if (when := (started or {}).get(m.id)) is not None
             and best is not None and (applied.get(m.id) or 0) >= best - HAND_OFF_LAG}
    if dated:
        return max((m for m in candidates if m.id in dated), key=lambda m: dated[m.id])
    if not isinstance(answering, Mapping):
        return candidates[0]
    return max(candidates, key=lambda m: (applied[m.id] is not None, applied[m.id] or 0))


def update_strategy_problem(replicas: int, max_unavailable: int | str | None) -> str | None:
    """Why a rolling update of ``replicas`` voters with this ``maxUnavailable`` (an int, a
    percentage, or None for the default of 1) could stop the cluster committing, or None.

    The StatefulSet controller rounds a percentage up and takes at least 1. Restarting
    pods are members that do not answer: more of them than a majority can spare and
    the cluster loses quorum until they are back, with one election or more."""
    if max_unavailable is None:
        return None  # one pod at a time: what every quorum of two or more spares
    if isinstance(max_unavailable, str):
        percent = int(max_unavailable.rstrip("%"))
        down = max(1, math.ceil(replicas * percent / 100))
    else:
        down = max(1, max_unavailable)
    spare = replicas - majority(replicas)
    if down <= max(1, spare):
        return None
    return (f"updateStrategy.rollingUpdate.maxUnavailable {max_unavailable} lets a rolling "
            f"update restart {min(down, replicas)} of {replicas} members at once; a "
            f"majority of {replicas} spares {spare}: the cluster stops committing while "
            f"they restart (set it to {max(1, spare)} or less)")


def bootstrap_blocker(states: Mapping[str, bool | None]) -> str | None:
    """Why a member with no raft state may not bootstrap a new cluster now, or None.

    ``states`` says of every other bootstrap member whether it holds raft state (True),
    provably none (False: its store or its init container said so), or None (nothing
    answered). Bootstrapping is safe only when every one is proven empty: a peer with
    state means the cluster exists and this node lost its volume (it must come back
    through a leader that drops its old entry, or its empty vote could elect a leader
    missing committed writes), and a silent peer may be such a member not back yet
    after a whole-cluster outage."""
    holding = sorted(name for name, held in states.items() if held)
    if holding:
        return (f"{', '.join(holding)} {'holds' if len(holding) == 1 else 'hold'} raft "
                "state: the cluster exists, so this member lost its own and waits for "
                "a leader to drop its old entry")
    silent = sorted(name for name, held in states.items() if held is None)
    if silent:
        return (f"no answer from {', '.join(silent)}: bootstrapping needs every bootstrap "
                "member to say it has no raft state (after a whole-cluster outage a "
                "silent one may hold the cluster's data)")
    return None
