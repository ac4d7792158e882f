"""The exec store's vote: every kept pod's sequence, highest wins, ties to the lowest ordinal."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent.seed import Choice, forced, missing_ballots, tied


@dataclass(frozen=True, slots=True)
class Ballot:
    """What one pod's init said: its ``sequence``, or why it has none (the hook failed,
    timed out or printed garbage: that pod may hold the latest writes, so no seed)."""

    ordinal: int
    sequence: int | None
    problem: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"ordinal": self.ordinal, "sequence": self.sequence, "problem": self.problem}

    @classmethod
    def from_dict(cls, raw: Any) -> Ballot | None:
        """A peer's ballot from its GET /init; None when absent or malformed."""
        if not isinstance(raw, dict):
            return None
        ordinal, sequence, problem = raw.get("ordinal"), raw.get("sequence"), raw.get("problem")
        if (not isinstance(ordinal, int) or isinstance(ordinal, bool)
                or not (sequence is None or (isinstance(sequence, int)
                                             and not isinstance(sequence, bool)
                                             and sequence >= 0))
                or not (problem is None or isinstance(problem, str))
                or (sequence is None) == (problem is None)):
            return None
        return cls(ordinal, sequence, problem)


def choose(ballots: Mapping[int, Ballot], expected: range, *,
           force: int | None = None) -> Choice:
    """The seed among the pods ``expected`` (the ordinals the StatefulSet keeps).

    Unlike RSS: a pod whose ``sequence`` failed is never passed over (it may hold the
    latest writes): the vote waits until it answers, or for ``force`` (an operator's
    override, which names the seed outright); ties go to the lowest ordinal, never to
    map order."""
    if force is not None:
        return forced(force)
    votes = {o: b for o, b in ballots.items() if o in expected}
    waiting = missing_ballots(votes, expected)
    if waiting is not None:
        return waiting
    failed = {o: b.problem for o, b in sorted(votes.items()) if b.sequence is None}
    if failed:
        said = "; ".join(f"ordinal {o}: {problem}" for o, problem in failed.items())
        return Choice(None, f"no seed while a pod's sequence is unknown ({said}): it may "
                            "hold the latest writes",
                      missing=tuple(failed))
    best = max(votes.values(), key=lambda b: (b.sequence or 0, -b.ordinal))
    tie = tied([o for o, b in votes.items() if b.sequence == best.sequence])
    return Choice(best.ordinal, f"ordinal {best.ordinal} has the highest sequence "
                                f"{best.sequence}{tie}")
