"""Real answers of etcd"s v3 gateway (3.4), for the parser property tests."""

from __future__ import annotations

from typing import Any

from agent.model import ClusterView
from agent.stores.etcd.api import build_view

MEMBERS = {"header": {"member_id": "11", "raft_term": "3"},
           "members": [{"ID": "11",
                        "name": "etcd-0",
                        "peerURLs": ["http://a:2380"],
                        "clientURLs": ["http://a:2379"]},
                       {"ID": "12",
                        "name": "etcd-1",
                        "peerURLs": ["http://b:2380"],
                        "clientURLs": ["http://b:2379"],
                        "isLearner": True}]}
STATUS = {"header": {"member_id": "11"},
          "version": "3.4.23",
          "leader": "11",
          "raftIndex": "40",
          "raftAppliedIndex": "40",
          "errors": []}

ANSWERS = (MEMBERS, STATUS)


def parse(members: Any, status: Any) -> ClusterView:
    return build_view(members, status)
