"""A Galera node's position on its volume: grastate.dat, --wsrep-recover's answer, our copy."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from agent import atomic

GRASTATE = "grastate.dat"
GVWSTATE = "gvwstate.dat"
# Where init keeps the position it recovered, before any start attempt: a failed start
# rewrites grastate.dat to seqno -1, and a crashed node's grastate.dat says -1 anyway.
SAVED = "sts-agent-position.json"
EMPTY_UUID = "00000000-0000-0000-0000-000000000000"
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_RECOVERED = re.compile(r"WSREP: Recovered position:\s*(\S+?):(-?\d+)")


class PositionUnreadable(ValueError):
    """A state file that exists but is not in the shape Galera writes."""


@dataclass(frozen=True, slots=True)
class Position:
    """A node's history (cluster state UUID) and the last transaction it committed
    (seqno; -1 when unknown)."""

    uuid: str
    seqno: int

    @property
    def known(self) -> bool:
        return self.seqno >= 0 and self.uuid != EMPTY_UUID

    def __str__(self) -> str:
        return f"{self.uuid}:{self.seqno}"


@dataclass(frozen=True, slots=True)
class GraState:
    """grastate.dat: the node's position as Galera last wrote it."""

    uuid: str
    seqno: int
    safe_to_bootstrap: bool
    version: str = "2.1"

    @property
    def position(self) -> Position:
        return Position(self.uuid, self.seqno)

    def text(self) -> str:
        return (f"# GALERA saved state\nversion: {self.version}\nuuid:    {self.uuid}\n"
                f"seqno:   {self.seqno}\nsafe_to_bootstrap: {int(self.safe_to_bootstrap)}\n")


def _uuid(value: str, what: str) -> str:
    if not _UUID.fullmatch(value):
        raise PositionUnreadable(f"{what}: {value!r} is not a UUID")
    return value


def parse_grastate(text: str) -> GraState:
    """The fields of a grastate.dat; PositionUnreadable when one is missing or bad."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and not key.lstrip().startswith("#"):
            fields[key.strip()] = value.strip()
    for key in ("uuid", "seqno"):
        if key not in fields:
            raise PositionUnreadable(f"grastate.dat: no {key} line")
    uuid = _uuid(fields["uuid"], "grastate.dat uuid")
    try:
        seqno = int(fields["seqno"])
    except ValueError:
        raise PositionUnreadable(f"grastate.dat: seqno {fields['seqno']!r} is not "
                                 "an integer") from None
    safe = fields.get("safe_to_bootstrap", "0")
    if safe not in ("0", "1"):
        raise PositionUnreadable(f"grastate.dat: safe_to_bootstrap {safe!r} is not 0 or 1")
    return GraState(uuid, seqno, safe == "1", fields.get("version", "2.1"))


def read_grastate(data_dir: Path) -> GraState | None:
    """The data dir's grastate.dat, None when there is none."""
    try:
        text = (data_dir / GRASTATE).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None
    return parse_grastate(text)


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` whole; the old file's owner and mode are kept
    (mariadbd runs as another user)."""
    atomic.write_atomically(path.parent, path.name, text.encode(), keep_owner=True)


def parse_recovered(log_text: str) -> Position | None:
    """The position ``mariadbd --wsrep-recover`` logged, the last one when several; None
    when it logged none (an empty data dir, or a failure the log names)."""
    found = _RECOVERED.findall(log_text)
    if not found:
        return None
    uuid, seqno = found[-1]
    return Position(_uuid(uuid, "recovered position"), int(seqno))


def read_saved(data_dir: Path) -> Position | None:
    """The position init kept on the volume before an earlier start attempt."""
    try:
        raw = json.loads((data_dir / SAVED).read_text(encoding="utf-8"))
        return Position(_uuid(str(raw["uuid"]), SAVED), int(raw["seqno"]))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        raise PositionUnreadable(f"{SAVED}: {exc}") from None


def save(data_dir: Path, position: Position) -> None:
    """Keep ``position`` on the volume (atomically) before mariadbd is started."""
    write_atomically(data_dir / SAVED,
                     json.dumps({"uuid": position.uuid, "seqno": position.seqno}) + "\n")


def best_known(grastate: GraState | None, recovered: Position | None,
               saved: Position | None) -> Position | None:
    """This node's position: grastate.dat's when it names one (a clean stop), else what
    InnoDB's recovery found in the data itself, else what an earlier init kept — only
    while nothing on the volume contradicts it (a failed start rewrote grastate.dat to
    -1 of the same history, and recovery found nothing). Never more than the data
    vouches for: the data saying it has no history (the zero UUID, as a node left
    mid-copy says) outweighs any kept copy. A history with no known seqno is returned
    with seqno -1; None: no history."""
    for position in (grastate.position if grastate else None, recovered):
        if position is not None and position.known:
            return position
    own = [p for p in (grastate.position if grastate else None, recovered) if p is not None]
    if saved is not None and saved.known and all(p.uuid == saved.uuid for p in own):
        return saved
    for position in reversed(own):  # the data's own word (recovery) before the file's
        if position.uuid != EMPTY_UUID:
            return Position(position.uuid, -1)
    return None


def empty_gvwstate(data_dir: Path) -> bool:
    """Whether gvwstate.dat exists with nothing in it: Galera then refuses to start
    ("failed to open gcomm backend connection"), so init drops it."""
    path = data_dir / GVWSTATE
    try:
        return path.stat().st_size == 0 or not path.read_text(errors="replace").strip()
    except FileNotFoundError:
        return False


@dataclass(frozen=True, slots=True)
class SavedView:
    """gvwstate.dat: the last Primary component this node was in, as Galera saved it for
    ``pc.recovery`` (written at each Primary view, removed on a clean leave): this node's
    group id (``member``), the view's id and its members' group ids."""

    member: str
    view: str  # "<view uuid>:<view seqno>"
    members: tuple[str, ...]  # sorted


PRIMARY_VIEW = 3  # gcomm's V_PRIM, the view type gvwstate.dat records


def parse_gvwstate(text: str) -> SavedView | None:
    """The saved view of a gvwstate.dat; None when it holds none this node can restore
    (no ``my_uuid`` or view id, not a Primary view, no members, or itself not a member)."""
    member: str | None = None
    view: str | None = None
    members: list[str] = []
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "my_uuid:" and _UUID.fullmatch(words[1]):
            member = words[1]
        elif (len(words) == 4 and words[0] == "view_id:" and words[1] == str(PRIMARY_VIEW)
              and _UUID.fullmatch(words[2]) and words[3].isdigit()):
            view = f"{words[2]}:{int(words[3])}"
        elif len(words) >= 2 and words[0] == "member:" and _UUID.fullmatch(words[1]):
            members.append(words[1])
    if member is None or view is None or member not in members:
        return None
    return SavedView(member, view, tuple(sorted(set(members))))


def read_gvwstate(data_dir: Path) -> SavedView | None:
    """The data dir's saved view; None when there is none or none to restore."""
    try:
        text = (data_dir / GVWSTATE).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None
    return parse_gvwstate(text)
