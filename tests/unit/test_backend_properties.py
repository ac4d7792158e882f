"""Property tests: every backend parser turns any JSON answer into a view or a BackendError."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.backends import consul, etcd, rqlite
from agent.backends.base import ClusterView
from agent.errors import BackendError

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**64, 2**64) | st.floats(allow_nan=True)
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)

ETCD_MEMBERS = {"header": {"member_id": "11", "raft_term": "3"},
                "members": [{"ID": "11", "name": "etcd-0", "peerURLs": ["http://a:2380"],
                             "clientURLs": ["http://a:2379"]},
                            {"ID": "12", "name": "etcd-1", "peerURLs": ["http://b:2380"],
                             "clientURLs": ["http://b:2379"], "isLearner": True}]}
ETCD_STATUS = {"header": {"member_id": "11"}, "version": "3.4.23", "leader": "11",
               "raftIndex": "40", "raftAppliedIndex": "40", "errors": []}
RQLITE_STATUS = {"store": {"node_id": "rqlite-0", "leader": {"node_id": "rqlite-0"},
                           "raft": {"applied_index": 9, "commit_index": 9},
                           "nodes": [{"id": "rqlite-0", "addr": "a:4002", "suffrage": "Voter"}]},
                 "build": {"version": "v8.36.0"}}
RQLITE_NODES = {"nodes": [{"id": "rqlite-0", "addr": "a:4002", "api_addr": "http://a:4001",
                           "voter": True, "reachable": True, "leader": True}]}
CONSUL_SELF = {"Config": {"NodeID": "id-0", "NodeName": "consul-0", "Server": True,
                          "Version": "1.22.2"}}
CONSUL_CONFIGURATION = {"Servers": [{"ID": "id-0", "Node": "consul-0", "Address": "a:8300",
                                     "Leader": True, "Voter": True}], "Index": 5}
CONSUL_HEALTH = {"Healthy": True, "Servers": [{"ID": "id-0", "LastIndex": 12,
                                                "Healthy": True}]}


def _etcd(members: Any, status: Any) -> ClusterView:
    return etcd.build_view(members, status)


def _rqlite(status: Any, nodes: Any) -> ClusterView:
    return rqlite.build_view(status, nodes)


def _consul(agent_self: Any, configuration: Any, health: Any) -> ClusterView:
    return consul.build_view(agent_self, configuration, health, api_port=8500, scheme="http")


PARSERS: dict[str, tuple[Callable[..., ClusterView], tuple[Any, ...]]] = {
    "etcd": (_etcd, (ETCD_MEMBERS, ETCD_STATUS)),
    "rqlite": (_rqlite, (RQLITE_STATUS, RQLITE_NODES)),
    "consul": (_consul, (CONSUL_SELF, CONSUL_CONFIGURATION, CONSUL_HEALTH)),
}


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


@pytest.mark.parametrize("store", sorted(PARSERS))
def test_realistic_answers_parse(store: str) -> None:
    parse, answers = PARSERS[store]
    assert parse(*answers).self_id


ODD_VALUES = [None, True, False, 0, -1, 2**70, 1.5, "", "x", "12", [], [None], [1, "a"], {},
              {"a": 1}, {"ID": None}]


@pytest.mark.parametrize("store", sorted(PARSERS))
def test_every_field_of_every_type(store: str) -> None:
    """Exhaustively: each value of a real answer replaced by each kind of JSON value."""
    parse, answers = PARSERS[store]
    cases = 0
    for which, answer in enumerate(answers):
        for path in _paths(answer):
            for new in ODD_VALUES:
                mutated = list(answers)
                mutated[which] = _replace(answer, path, new)
                _parses_or_refuses(parse, tuple(mutated))
                cases += 1
    assert cases > 100


@pytest.mark.parametrize("store", sorted(PARSERS))
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), new=JSON)
def test_one_field_replaced_by_anything(store: str, data: st.DataObject, new: Any) -> None:
    """A real answer with any one value (or subtree) swapped for arbitrary JSON."""
    parse, answers = PARSERS[store]
    which = data.draw(st.integers(0, len(answers) - 1), label="answer")
    path = data.draw(st.sampled_from(_paths(answers[which])), label="path")
    mutated = list(answers)
    mutated[which] = _replace(answers[which], path, new)
    _parses_or_refuses(parse, tuple(mutated))


@pytest.mark.parametrize("store", sorted(PARSERS))
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_entirely_arbitrary_answers(store: str, data: st.DataObject) -> None:
    parse, answers = PARSERS[store]
    _parses_or_refuses(parse, tuple(data.draw(JSON) for _ in answers))
