"""What every store's vote shares: the override, and the ballots still missing."""

from __future__ import annotations

from agent.seed import forced, missing_ballots, tied


def test_the_override_names_the_seed_and_says_so() -> None:
    choice = forced(2)
    assert choice.seed == 2 and "override" in choice.reason and not choice.refused


def test_every_kept_pod_must_vote() -> None:
    assert missing_ballots({0, 1, 2}, range(3)) is None
    assert missing_ballots({0, 1, 2, 7}, range(3)) is None
    waiting = missing_ballots({1}, range(3))
    assert waiting is not None and waiting.seed is None and waiting.missing == (0, 2)
    assert "ordinals 0, 2" in waiting.reason


def test_a_tie_names_the_others_and_the_rule() -> None:
    assert tied([2, 0, 1]) == " (tied with 1, 2: lowest ordinal)"
    assert tied([3]) == "" and tied([]) == ""
