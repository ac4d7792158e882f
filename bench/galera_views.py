"""How long each Galera view change held the group's commits, phase by phase."""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# Read from the mariadbd logs a kept run leaves (``bench/disruption.py --keep``; the EVS
# state changes are logged only with ``evs.info_log_mask=0x3`` in the provider options).
# The phases of one view change as an existing member logs them, each timed from the line
# before to its own: the members agree on who is in the view (EVS join messages, then the
# install message), the new regular view is delivered, the PC layer finds it Primary (its
# state messages, delivered in safe order), and GCS exchanges states: commits go on after
# "Quorum results". A second round (another member seen while the first was installed)
# adds to the same phases, its agreement timed from the regular view before it.
PHASES = (("agree", "state change: GATHER -> INSTALL"),
          ("install", "state change: INSTALL -> OPERATIONAL"),
          ("primary", "view(view_id(PRIM,"),
          ("states", "Quorum results"))
START = "state change: OPERATIONAL -> GATHER"
# A view with no Primary component: the change under way ends without one (a partition).
NON_PRIMARY = "view(view_id(NON_PRIM,"


@dataclass(slots=True)
class ViewChange:
    """One view change seen by one member: when it began and how long each phase took."""

    began: datetime.datetime
    view: str  # the Primary view it installed: "uuid,n"
    phases: dict[str, float]  # seconds, by name in PHASES order; a repeated phase adds up

    @property
    def total(self) -> float:
        return sum(self.phases.values())


def moment(line: str) -> datetime.datetime | None:
    """The time a container log line (CRI format) was written, to the microsecond; None
    for a line without that time (mariadbd's own stamp has no zone and only seconds)."""
    try:
        written = datetime.datetime.fromisoformat(line.split(" ", 1)[0])
    except ValueError:
        return None
    return written if written.tzinfo is not None else None


def changes(lines: Iterable[str]) -> list[ViewChange]:
    """Every view change in one member's log, from its shift to GATHER to its quorum."""
    found: list[ViewChange] = []
    began: datetime.datetime | None = None
    last = began
    phases: dict[str, float] = {}
    view = ""
    for line in lines:
        if " stderr F \t" in line or " stdout F \t" in line:
            continue  # the body of a multi-line message
        if began is None or last is None:
            if START in line and (now := moment(line)) is not None:
                began = last = now
                phases, view = {name: 0.0 for name, _ in PHASES}, ""
            continue
        if NON_PRIMARY in line and moment(line) is not None:
            began = last = None  # no Primary view came of it: not a change that ended
            continue
        for name, marker in PHASES:
            if marker in line:
                if (now := moment(line)) is None:
                    break
                phases[name] += (now - last).total_seconds()
                last = now
                if name == "primary":
                    view = line.split("view_id(PRIM,", 1)[1].split(")", 1)[0]
                if name == "states":
                    if view:
                        found.append(ViewChange(began, view, phases))
                    began = last = None
                break
    return found


def slowest(per_member: Iterable[ViewChange]) -> list[ViewChange]:
    """Each Primary view once, as its slowest member saw it (commits wait for all)."""
    by_view: dict[str, ViewChange] = {}
    for change in per_member:
        kept = by_view.get(change.view)
        if kept is None or change.total > kept.total:
            by_view[change.view] = change
    return sorted(by_view.values(), key=lambda c: c.began)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, epilog="Reads the mariadbd logs of a kept run (bench/disruption.py "
        "--keep); Galera logs its EVS state changes only with evs.info_log_mask=0x3 in the "
        "provider options.")
    parser.add_argument("workdir", type=Path, nargs="+",
                        help="a kept work directory (or any folder holding the pods' logs)")
    args = parser.parse_args()
    missing = False
    for workdir in args.workdir:
        logs = sorted(workdir.glob("**/*_galera-*_*/galera/*.log"))
        seen = slowest(c for log in logs
                       for c in changes(log.read_text(encoding="utf-8", errors="replace")
                                        .splitlines()))
        if not seen:
            print(f"{workdir}: no view change with its EVS states in {len(logs)} logs "
                  f"(evs.info_log_mask=0x3 not set?)", file=sys.stderr)
            missing = True
            continue
        totals = [c.total for c in seen]
        print(f"\n{workdir}: {len(seen)} view changes in {len(logs)} logs; held commits "
              f"median {statistics.median(totals):.2f} s, worst {max(totals):.2f} s\n")
        print("| began (UTC) | Primary view | " + " | ".join(n for n, _ in PHASES)
              + " | total s |")
        print("|---|---|" + "---|" * len(PHASES) + "---|")
        for c in seen:
            print(f"| {c.began:%H:%M:%S.%f} | {c.view} | "
                  + " | ".join(f"{c.phases[n]:.2f}" for n, _ in PHASES)
                  + f" | {c.total:.2f} |")
        print("| median | | " + " | ".join(
            f"{statistics.median(c.phases[n] for c in seen):.2f}" for n, _ in PHASES)
              + f" | {statistics.median(totals):.2f} |")
    return 1 if missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
