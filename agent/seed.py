"""What every store's bootstrap vote shares: the outcome, and the ballots still missing (no I/O)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Choice:
    """The vote's outcome. ``seed`` set: that ordinal bootstraps. Else ``refused`` says
    whether waiting can help (False: more ballots may settle it; True: never, it needs
    a person), and ``reason`` why."""

    seed: int | None
    reason: str
    refused: bool = False
    missing: tuple[int, ...] = ()


def forced(ordinal: int) -> Choice:
    """An operator's override names the seed outright."""
    return Choice(ordinal, f"forced by the operator's override to seed ordinal {ordinal}")


def missing_ballots(voted: Collection[int], expected: range) -> Choice | None:
    """Waiting, while any pod the StatefulSet keeps has not voted: a missing one may
    hold the latest writes (no majority shortcut)."""
    missing = tuple(o for o in expected if o not in voted)
    if not missing:
        return None
    return Choice(None, "waiting for the ballots of ordinals "
                        f"{', '.join(map(str, missing))}: every pod the StatefulSet keeps "
                        "must vote (a missing one may hold the latest writes)",
                  missing=missing)


def tied(ordinals: Collection[int]) -> str:
    """How a choice among equals reads: the seed is the lowest of ``ordinals``; the
    others named (empty when there was no tie)."""
    ranked = sorted(ordinals)
    if len(ranked) < 2:
        return ""
    return f" (tied with {', '.join(map(str, ranked[1:]))}: lowest ordinal)"
