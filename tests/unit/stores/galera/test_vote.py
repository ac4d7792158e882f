"""The bootstrap vote: every pod computes the same seed, and refuses what would lose writes."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.stores.galera.position import Position, SavedView
from agent.stores.galera.vote import Ballot, choose, restorable

X = "e955b900-ee63-11f1-bd7e-467014377b0a"
Y = "11111111-ee63-11f1-bd7e-467014377b0a"


def ballots(*items: Ballot) -> dict[int, Ballot]:
    return {b.ordinal: b for b in items}


def test_the_highest_seqno_seeds() -> None:
    choice = choose(ballots(Ballot(0, X, 5), Ballot(1, X, 9), Ballot(2, X, 7)), range(3))
    assert choice.seed == 1 and "latest position" in choice.reason and not choice.refused


def test_a_tie_goes_to_the_lowest_ordinal() -> None:
    choice = choose(ballots(Ballot(0, X, 5), Ballot(1, X, 9), Ballot(2, X, 9)), range(3))
    assert choice.seed == 1 and "tied with 2" in choice.reason


def test_all_new_seeds_the_first_ordinal_of_the_statefulset() -> None:
    assert choose(ballots(Ballot(3, None), Ballot(4, None)), range(3, 5)).seed == 3


def test_data_without_a_history_is_refused() -> None:
    """Databases but no Galera position anywhere: no new history is started over them."""
    choice = choose(ballots(Ballot(0, None), Ballot(1, None, data=True), Ballot(2, None)),
                    range(3))
    assert choice.seed is None and choice.refused and "ordinals 1 hold data" in choice.reason


def test_nobody_seeds_while_a_pod_the_statefulset_keeps_has_not_voted() -> None:
    """No majority shortcut: the missing pod may hold the latest writes."""
    choice = choose(ballots(Ballot(0, X, 5), Ballot(1, X, 9)), range(3))
    assert choice.seed is None and not choice.refused and choice.missing == (2,)
    assert "ordinals 2" in choice.reason


def test_a_pod_outside_the_statefulset_does_not_vote() -> None:
    """A scaled-down pod still answering does not take part (nor count as present)."""
    choice = choose(ballots(Ballot(0, X, 5), Ballot(1, X, 6), Ballot(3, X, 99)), range(2))
    assert choice.seed == 1


def test_two_histories_are_refused_naming_each() -> None:
    choice = choose(ballots(Ballot(0, X, 5), Ballot(1, Y, 9), Ballot(2, X, 7)), range(3))
    assert choice.seed is None and choice.refused
    assert f"{X}: ordinals 0, 2" in choice.reason and f"{Y}: ordinals 1" in choice.reason


def test_a_wiped_volume_never_seeds_a_cluster_with_history() -> None:
    choice = choose(ballots(Ballot(0, None), Ballot(1, X, 3), Ballot(2, X, 2)), range(3))
    assert choice.seed == 1


def test_an_unknown_position_is_refused() -> None:
    """A volume whose position nobody could recover may hold the latest writes."""
    choice = choose(ballots(Ballot(0, X, 5), Ballot(1, X, -1), Ballot(2, X, 7)), range(3))
    assert choice.seed is None and choice.refused and "ordinals 1" in choice.reason


def test_the_override_seeds_without_waiting() -> None:
    choice = choose(ballots(Ballot(0, X, 5)), range(3), force=2)
    assert choice.seed == 2 and "override" in choice.reason


def test_ballot_round_trips_and_rejects_garbage() -> None:
    ballot = Ballot.of(2, Position(X, 7), True)
    assert Ballot.from_dict(ballot.as_dict()) == ballot
    viewed = Ballot.of(2, Position(X, 7), False, view=view(A))
    assert Ballot.from_dict(viewed.as_dict()) == viewed
    decided = Ballot(2, X, 7, view=view(A), decided="recover")
    assert Ballot.from_dict(decided.as_dict()) == decided
    older = viewed.as_dict()
    del older["view"], older["decided"]  # an older agent's ballot
    assert Ballot.from_dict(older) == Ballot.of(2, Position(X, 7), False)
    assert Ballot.of(1, None, False).uuid is None
    assert Ballot.of(1, Position("00000000-0000-0000-0000-000000000000", -1), False).uuid is None
    bad: object
    for bad in (None, [], {"ordinal": True, "uuid": X, "seqno": 1, "safe_to_bootstrap": False},
                {"ordinal": 1, "uuid": 3, "seqno": 1, "safe_to_bootstrap": False},
                {"ordinal": 1, "uuid": X, "seqno": "1", "safe_to_bootstrap": False},
                {"ordinal": 1, "uuid": X, "seqno": 1},
                {**viewed.as_dict(), "view": {"member": A, "id": "v:1", "members": A}},
                {**viewed.as_dict(), "view": [A]}, {**viewed.as_dict(), "decided": 1}):
        assert Ballot.from_dict(bad) is None


BALLOT = st.builds(Ballot, ordinal=st.integers(0, 4),
                   uuid=st.sampled_from([None, X, Y]), seqno=st.integers(-1, 5),
                   safe_to_bootstrap=st.booleans(), data=st.booleans())


@given(st.lists(BALLOT, max_size=5, unique_by=lambda b: b.ordinal))
def test_every_pod_computes_the_same_choice_whatever_order_it_heard(found: list[Ballot]) -> None:
    """The choice depends on the set of ballots only; a seed is a voter with the highest
    seqno of the one history (or the first ordinal when all are new)."""
    expected = range(5)
    choices = {choose(dict((b.ordinal, b) for b in order), expected)
               for order in itertools.islice(itertools.permutations(found), 24)}
    assert len(choices) <= 1
    for choice in choices:
        if choice.seed is None:
            continue
        histories = {b.uuid for b in found if b.uuid}
        assert len(found) == 5 and len(histories) <= 1
        if histories:
            top = max(b.seqno for b in found if b.uuid)
            assert next(b for b in found if b.ordinal == choice.seed).seqno == top >= 0
        else:
            assert choice.seed == 0 and not any(b.data for b in found)


@pytest.mark.parametrize("missing", [0, 1, 2])
def test_any_missing_pod_blocks_the_seed(missing: int) -> None:
    present = [Ballot(o, X, 10 - o) for o in range(3) if o != missing]
    assert choose(ballots(*present), range(3)).seed is None


A, B, C, D = (f"{n}0000000-d3f1-11f1-8e2e-0b5b0b0b0b0a" for n in "abcd")
VIEW = f"{A}:5"


def view(member: str, view_id: str = VIEW, members: tuple[str, ...] = (A, B, C)) -> SavedView:
    return SavedView(member, view_id, members)


def restored(*seqnos: int, views: tuple[SavedView | None, ...] | None = None) -> dict[int, Ballot]:
    views = views or (view(A), view(B), view(C))
    return ballots(*(Ballot(o, X, s, view=v) for o, (s, v) in enumerate(zip(seqnos, views,
                                                                           strict=True))))


def test_every_pod_with_the_same_saved_view_is_restorable() -> None:
    why = restorable(restored(7, 9, 9), range(3))
    assert why is not None and f"Primary view {VIEW} of these 3 members" in why
    # The vote still names its seed: the fallback if the view never re-forms.
    assert choose(restored(7, 9, 9), range(3)).seed == 1


@pytest.mark.parametrize(("seqnos", "views", "kept"), [
    ((7, 9, 9), (view(A), view(B), None), range(3)),  # one left cleanly: no saved view
    ((7, 9, 9), (view(A), view(B), view(C, f"{A}:6")), range(3)),  # a later view
    ((7, 9, 9), (view(A), view(B), view(D)), range(3)),  # a group id not in the view
    ((7, 9, 9), (view(A), view(B), view(B)), range(3)),  # one group id twice
    ((7, 9), (view(A, members=(A, B)), view(B, members=(A, B))), range(3)),  # a ballot missing
    ((7, 9, 9), (view(A, members=(A, B, C, D)), view(B, members=(A, B, C, D)),
                 view(C, members=(A, B, C, D))), range(3)),  # a member not kept
    ((7, -1, 9), (view(A), view(B), view(C)), range(3)),  # a position unknown
])
def test_anything_else_is_not(seqnos: tuple[int, ...], views: tuple[SavedView | None, ...],
                              kept: range) -> None:
    assert restorable(restored(*seqnos, views=views), kept) is None


def test_two_histories_are_not_restorable() -> None:
    votes = restored(7, 9, 9)
    votes[2] = Ballot(2, Y, 9, view=view(C))
    assert restorable(votes, range(3)) is None
