"""Quorum before a membership change that adds a voter or learner, for every store."""

from __future__ import annotations

from collections.abc import Sequence

from agent.backends.base import Member


def quorum_for_add(members: Sequence[Member], answering: set[str]) -> str | None:
    """Why adding a member now would be unsafe, or None.

    A learner does not count towards quorum, but the add itself must commit: the started
    voters that answer must be a majority of the voters.
    """
    voters = [m for m in members if m.voter]
    started = [m for m in voters if m.id in answering]
    needed = len(voters) // 2 + 1
    if len(started) < needed:
        return (f"only {len(started)} of {len(voters)} voters answer; {needed} needed "
                "before a member can be added")
    return None
