"""Real answers of rqlite"s HTTP API (8.36), for the parser property tests."""

from __future__ import annotations

from typing import Any

from agent.model import ClusterView
from agent.stores.rqlite.api import build_view

STATUS = {"store": {"node_id": "rqlite-0",
                    "leader": {"node_id": "rqlite-0"},
                    "raft": {"applied_index": 9, "commit_index": 9},
                    "nodes": [{"id": "rqlite-0", "addr": "a:4002", "suffrage": "Voter"}]},
          "build": {"version": "v8.36.0"}}
NODES = {"nodes": [{"id": "rqlite-0",
                    "addr": "a:4002",
                    "api_addr": "http://a:4001",
                    "voter": True,
                    "reachable": True,
                    "leader": True}]}

ANSWERS = (STATUS, NODES)


def parse(status: Any, nodes: Any) -> ClusterView:
    return build_view(status, nodes)
