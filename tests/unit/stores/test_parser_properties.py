"""Property tests over the registry: every store's parser turns any JSON into a view or a
BackendError."""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.errors import BackendError
from agent.model import ClusterView
from agent.registry import STORES

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**64, 2**64) | st.floats(allow_nan=True)
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)

def _sample(store: str) -> tuple[Callable[..., ClusterView], tuple[Any, ...]]:
    """The store's real answers and its parser: ``tests/unit/stores/<store>/answers.py``
    (``ANSWERS``, and ``parse`` taking them in order), which every registered store has."""
    module = importlib.import_module(f"tests.unit.stores.{store}.answers")
    return module.parse, module.ANSWERS


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place inside a JSON value that another value could take."""
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copied = copy.deepcopy(value)
    target = copied
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = new
    return copied


def _parses_or_refuses(parse: Callable[..., ClusterView], answers: tuple[Any, ...]) -> None:
    try:
        view = parse(*answers)
    except BackendError as exc:
        assert exc.message  # a reason the readiness body can name
        return
    assert isinstance(view, ClusterView)
    assert isinstance(view.members, tuple)


@pytest.mark.parametrize("store", sorted(STORES))
def test_realistic_answers_parse(store: str) -> None:
    parse, answers = _sample(store)
    assert parse(*answers).self_id


ODD_VALUES = [None, True, False, 0, -1, 2**70, 1.5, "", "x", "12", [], [None], [1, "a"], {},
              {"a": 1}, {"ID": None}]


@pytest.mark.parametrize("store", sorted(STORES))
def test_every_field_of_every_type(store: str) -> None:
    """Exhaustively: each value of a real answer replaced by each kind of JSON value."""
    parse, answers = _sample(store)
    cases = 0
    for which, answer in enumerate(answers):
        for path in _paths(answer):
            for new in ODD_VALUES:
                mutated = list(answers)
                mutated[which] = _replace(answer, path, new)
                _parses_or_refuses(parse, tuple(mutated))
                cases += 1
    assert cases > 100


@pytest.mark.parametrize("store", sorted(STORES))
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), new=JSON)
def test_one_field_replaced_by_anything(store: str, data: st.DataObject, new: Any) -> None:
    """A real answer with any one value (or subtree) swapped for arbitrary JSON."""
    parse, answers = _sample(store)
    which = data.draw(st.integers(0, len(answers) - 1), label="answer")
    path = data.draw(st.sampled_from(_paths(answers[which])), label="path")
    mutated = list(answers)
    mutated[which] = _replace(answers[which], path, new)
    _parses_or_refuses(parse, tuple(mutated))


@pytest.mark.parametrize("store", sorted(STORES))
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_entirely_arbitrary_answers(store: str, data: st.DataObject) -> None:
    parse, answers = _sample(store)
    _parses_or_refuses(parse, tuple(data.draw(JSON) for _ in answers))
