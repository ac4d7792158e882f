"""etcd before it starts: new or existing cluster, this member's state, what to do first."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from agent.model import Member


@dataclass(frozen=True, slots=True)
class Action:
    """One change to make before etcd starts, in order."""

    kind: Literal["move_data_aside", "remove_member", "add_learner"]
    target: str = ""  # member id to remove, or the peer URL to add


@dataclass(frozen=True, slots=True)
class EtcdPlan:
    """What init renders (``state``, ``initial_cluster``) and does (``actions``)."""

    state: Literal["new", "existing", "wait"]
    initial_cluster: str
    actions: tuple[Action, ...]
    reason: str


def _cluster_string(entries: Sequence[tuple[str, str]]) -> str:
    return ",".join(f"{name}={url}" for name, url in entries)


def plan_start(
    *,
    name: str,
    peer_url: str,
    bootstrap: Sequence[tuple[str, str]],
    members: Sequence[Member] | None,
    has_data: bool,
    local_id: str | None = None,
    names_by_url: Mapping[str, str] | None = None,
    bootstrap_blocker: str | None,
) -> EtcdPlan:
    """Decide how this etcd member starts.

    ``bootstrap`` is (name, peer URL) of the bootstrap ordinals, the same on every
    pod; ``members`` the member list of a running cluster, or None when no peer answered;
    ``has_data`` whether this pod's data dir holds a member already, ``local_id`` the
    member id its WAL names (when readable). A member "is us" when its name is ours or
    it carries our peer URL (a member added but never started has no name yet; such
    others are named from ``names_by_url``, the pods' peer URLs, since etcd checks every
    member's URL against ``initial-cluster`` when the new member starts).
    ``bootstrap_blocker`` is why bootstrapping is not proven safe with no peer answering
    (``quorum.bootstrap_blocker``), None when every other bootstrap member said it has no
    data: a member with no data that starts "new" under its old name gets its old member
    id back (etcd derives both ids from the names and URLs) and would vote with an empty
    log.
    """
    if members is None:
        if has_data:
            # Everyone restarting at once: etcd starts from its data; flags are ignored.
            return EtcdPlan("new", _cluster_string(bootstrap), (),
                            "no peer answers; restarting from this member's data")
        if name not in {n for n, _ in bootstrap}:
            return EtcdPlan("wait", "", (), f"no cluster answers yet and {name} is not one "
                                            "of the bootstrap members: waiting for them")
        if bootstrap_blocker is not None:
            return EtcdPlan("wait", "", (), f"{name} has no data and no peer's etcd "
                                            f"answers; not bootstrapping: {bootstrap_blocker}")
        return EtcdPlan("new", _cluster_string(bootstrap), (),
                        f"no cluster yet and no bootstrap member has data: bootstrapping "
                        f"with {len(bootstrap)} members")

    mine = [m for m in members if m.name == name or peer_url == m.address]
    others = [m for m in members if m not in mine]
    actions: list[Action] = []
    if mine:
        me = mine[0]
        # A started member has published its client URLs. A bootstrap member has its name
        # from the initial cluster before it ever starts: one whose init runs after its
        # peers formed the cluster must start into its entry, not remove it as "lost".
        started = bool(me.name) and me.api_url is not None
        if has_data and started and local_id is not None and local_id != me.id:
            # etcd would refuse to start ("member ID mismatch"): the data is another
            # member's (an old volume restored, a copy). Keep it aside, join anew.
            actions.extend([Action("remove_member", me.id), Action("move_data_aside"),
                            Action("add_learner", peer_url)])
            reason = (f"the data belongs to member {local_id} but {name} is member "
                      f"{me.id}: moving it aside, joining anew")
        elif has_data and started:
            reason = f"restart of member {me.id}: no membership change"
        elif not started and not has_data:
            reason = f"member {me.id} was added but never started: starting it"
        else:
            # Data without a membership entry of ours, or an entry without data (volume
            # lost): drop the entry and come back as a new learner.
            actions.append(Action("remove_member", me.id))
            if has_data:
                actions.append(Action("move_data_aside"))
            actions.append(Action("add_learner", peer_url))
            reason = (f"member {me.id} lost its data: removing it and joining anew"
                      if not has_data else
                      f"member {me.id} never started but data exists: joining anew")
    else:
        if has_data:
            actions.append(Action("move_data_aside"))
            reason = "this member was removed but its data is here: moving it aside, joining"
        else:
            reason = "joining the running cluster as a learner"
        actions.append(Action("add_learner", peer_url))
    known = names_by_url or {}
    entries = [(m.name or known.get(m.address) or f"member-{m.id}", m.address)
               for m in others if m.address]
    entries.append((name, peer_url))
    return EtcdPlan("existing", _cluster_string(sorted(entries, key=lambda e: e[0])),
                    tuple(actions), reason)

