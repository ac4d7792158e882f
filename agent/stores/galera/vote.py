"""The bootstrap vote after a full outage: every pod computes the same seed (no I/O)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent.seed import Choice, forced, missing_ballots, tied
from agent.stores.galera.position import EMPTY_UUID, Position, SavedView


@dataclass(frozen=True, slots=True)
class Ballot:
    """What one pod's init says of its volume: its history and position, and whether
    Galera marked it the last to leave cleanly."""

    ordinal: int
    uuid: str | None  # None: no Galera history (a new or wiped volume)
    seqno: int = -1
    safe_to_bootstrap: bool = False
    data: bool = False  # the volume holds databases (with or without a history)
    view: SavedView | None = None  # gvwstate.dat: the last Primary view, for pc.recovery
    decided: str | None = None  # "recover": this pod seeds by pc.recovery, follow it

    @classmethod
    def of(cls, ordinal: int, position: Position | None, safe: bool, *,
           data: bool = False, view: SavedView | None = None) -> Ballot:
        if position is None or position.uuid == EMPTY_UUID:
            return cls(ordinal, None, data=data)
        return cls(ordinal, position.uuid, position.seqno, safe, data=data, view=view)

    def as_dict(self) -> dict[str, Any]:
        view = self.view
        return {"ordinal": self.ordinal, "uuid": self.uuid, "seqno": self.seqno,
                "safe_to_bootstrap": self.safe_to_bootstrap, "data": self.data,
                "decided": self.decided,
                "view": None if view is None else {"member": view.member, "id": view.view,
                                                   "members": list(view.members)}}

    @classmethod
    def from_dict(cls, raw: Any) -> Ballot | None:
        """A peer's ballot from its GET /init; None when absent or malformed."""
        if not isinstance(raw, dict):
            return None
        ordinal, uuid, seqno = raw.get("ordinal"), raw.get("uuid"), raw.get("seqno")
        safe, data = raw.get("safe_to_bootstrap"), raw.get("data", False)
        if (not isinstance(ordinal, int) or isinstance(ordinal, bool)
                or not (uuid is None or isinstance(uuid, str))
                or not isinstance(seqno, int) or isinstance(seqno, bool)
                or not isinstance(safe, bool) or not isinstance(data, bool)):
            return None
        view, decided = raw.get("view"), raw.get("decided")  # absent from older ballots
        if not (decided is None or isinstance(decided, str)):
            return None
        if view is not None:
            member, view_id, members = (view.get("member"), view.get("id"),
                                        view.get("members")) if isinstance(view, dict) \
                else (None, None, None)
            if (not isinstance(member, str) or not isinstance(view_id, str)
                    or not isinstance(members, list)
                    or not all(isinstance(m, str) for m in members)):
                return None
            view = SavedView(member, view_id, tuple(sorted(set(members))))
        return cls(ordinal, uuid or None, seqno, safe, data=data, view=view, decided=decided)


def choose(ballots: Mapping[int, Ballot], expected: range, *,
           force: int | None = None) -> Choice:
    """The seed for the pods ``expected`` (the StatefulSet's ordinals), from their ballots.

    Every pod the StatefulSet keeps must have voted (no majority shortcut: the missing
    one may hold the latest writes). All new (empty volumes): the first ordinal; data
    but no history anywhere: refused. Two histories: refused (one would overwrite the
    other). Else the highest seqno, ties to the lowest ordinal;
    a pod without history never seeds a cluster that has one. ``force`` (an operator's
    override) names the seed outright."""
    if force is not None:
        return forced(force)
    votes = {o: b for o, b in ballots.items() if o in expected}
    waiting = missing_ballots(votes, expected)
    if waiting is not None:
        return waiting
    histories = sorted({b.uuid for b in votes.values() if b.uuid is not None})
    if len(histories) > 1:
        owners = "; ".join(
            f"{uuid}: ordinals "
            + ", ".join(str(o) for o, b in sorted(votes.items()) if b.uuid == uuid)
            for uuid in histories)
        return Choice(None, f"refused: the volumes hold {len(histories)} different "
                            f"cluster histories ({owners}); seeding either would discard "
                            "the other's writes", refused=True)
    if not histories:
        holding = [o for o, b in sorted(votes.items()) if b.data]
        if holding:
            # Databases with no Galera position (a node left mid-copy; a server made a
            # Galera node): a new history over them would decide, unasked, whose data
            # every other node copies.
            return Choice(None, f"refused: ordinals {', '.join(map(str, holding))} hold "
                                "data but no Galera position; seeding would start a new "
                                "history over it", refused=True)
        return Choice(expected.start, f"all {len(votes)} volumes are new: the first "
                                      f"ordinal ({expected.start}) starts the cluster")
    unknown = [o for o, b in sorted(votes.items()) if b.uuid is not None and b.seqno < 0]
    if unknown:
        return Choice(None, f"refused: ordinals {', '.join(map(str, unknown))} hold history "
                            f"{histories[0]} at an unknown position (seqno -1, recovery found "
                            "none): any of them may hold the latest writes", refused=True)
    best = max(votes.values(), key=lambda b: (b.uuid is not None, b.seqno, -b.ordinal))
    tie = tied([o for o, b in votes.items() if b.seqno == best.seqno and b.uuid])
    return Choice(best.ordinal, f"ordinal {best.ordinal} holds the latest position "
                                f"{best.uuid}:{best.seqno}{tie}")


def restorable(ballots: Mapping[int, Ballot], expected: range) -> str | None:
    """Why Galera itself re-forms the last Primary component (``pc.recovery``) once every
    node of ``expected`` runs, or None when it cannot: every kept pod voted, one history
    at known positions, and every ballot shows the same saved Primary view whose members
    are exactly the kept pods' group ids. Galera promotes such a view only when all of
    its members are back and agree on it, so nothing committed is left out; it also
    picks the most advanced of them to bring the others up to date."""
    votes = [b for o, b in ballots.items() if o in expected]
    if {b.ordinal for b in votes} != set(expected):
        return None
    if (len({b.uuid for b in votes}) != 1
            or any(b.uuid is None or b.seqno < 0 for b in votes)):
        return None
    saved = [b.view for b in votes if b.view is not None]
    if len(saved) != len(votes) or len({(v.view, v.members) for v in saved}) != 1:
        return None
    view_id, members = saved[0].view, saved[0].members
    if tuple(sorted(v.member for v in saved)) != members:  # each a member, none twice
        return None
    return (f"every pod's gvwstate.dat holds Primary view {view_id} of these "
            f"{len(members)} members: Galera re-forms it (pc.recovery) once all run")
