"""The exec vote: every kept pod's sequence, highest wins, ties to the lowest, a failure blocks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.stores.exec.vote import Ballot, choose

KEPT = range(0, 3)


def ballots(*sequences: int | None) -> dict[int, Ballot]:
    return {o: Ballot(o, s, None if s is not None else "sequence hook exited 1")
            for o, s in enumerate(sequences)}


def test_the_highest_sequence_seeds() -> None:
    choice = choose(ballots(4, 9, 7), KEPT)
    assert choice.seed == 1 and "highest sequence 9" in choice.reason


def test_ties_go_to_the_lowest_ordinal_never_to_map_order() -> None:
    votes = dict(reversed(list(ballots(3, 9, 9).items())))
    choice = choose(votes, KEPT)
    assert choice.seed == 1 and "tied with 2" in choice.reason


def test_a_missing_ballot_is_waited_for() -> None:
    choice = choose({0: Ballot(0, 5), 2: Ballot(2, 1)}, KEPT)
    assert choice.seed is None and choice.missing == (1,)


def test_a_failed_sequence_blocks_the_seed_instead_of_passing_the_pod_over() -> None:
    """RSS keeps such a pod eligible with an old value or skips it: either may seed
    a lower sequence than the pod holds."""
    choice = choose(ballots(4, None, 2), KEPT)
    assert choice.seed is None and choice.missing == (1,)
    assert "ordinal 1: sequence hook exited 1" in choice.reason


def test_the_override_names_the_seed_outright() -> None:
    assert choose(ballots(4, None, 2), KEPT, force=2).seed == 2


def test_pods_outside_the_kept_ordinals_do_not_vote() -> None:
    votes = {**ballots(1, 2, 3), 3: Ballot(3, 99)}
    assert choose(votes, KEPT).seed == 2


@given(st.lists(st.integers(0, 5), min_size=3, max_size=3))
def test_every_pod_computes_the_same_seed_whatever_the_order(sequences: list[int]) -> None:
    votes = ballots(*sequences)
    forward, backward = choose(votes, KEPT), choose(dict(reversed(votes.items())), KEPT)
    assert forward == backward and forward.seed is not None
    assert sequences[forward.seed] == max(sequences)
    assert forward.seed == sequences.index(max(sequences))


@pytest.mark.parametrize("raw", [
    None, [], {"ordinal": 1}, {"ordinal": True, "sequence": 1, "problem": None},
    {"ordinal": 1, "sequence": -1, "problem": None}, {"ordinal": 1, "sequence": None,
                                                      "problem": None},
    {"ordinal": 1, "sequence": 3, "problem": "x"}, {"ordinal": 1, "sequence": "3",
                                                    "problem": None}])
def test_malformed_ballots_are_no_ballots(raw: object) -> None:
    assert Ballot.from_dict(raw) is None


def test_ballots_round_trip() -> None:
    for ballot in (Ballot(2, 17), Ballot(0, None, "timed out")):
        assert Ballot.from_dict(ballot.as_dict()) == ballot
