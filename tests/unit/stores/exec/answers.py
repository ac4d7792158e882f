"""An answer of the members hook (a three-member store, one a learner, addresses as the tests
use them), for the parser property tests."""

from __future__ import annotations

from typing import Any

from agent.model import ClusterView
from agent.stores.exec.status import members_view

MEMBERS: dict[str, Any] = {
    "members": [
        {"id": "8e9e05c52164694d", "name": "etcd-0", "address": "http://10.0.0.1:2380",
         "voter": True},
        {"id": "91bc3c398fb3c146", "name": "etcd-1", "address": "http://10.0.0.2:2380",
         "voter": True},
        {"id": "fd422379fda50e48", "name": "etcd-2", "address": "http://10.0.0.3:2380",
         "voter": False, "api_url": "http://10.0.0.3:9090"},
    ],
    "leader": "8e9e05c52164694d",
    "self": "91bc3c398fb3c146",
    "applied_index": 41,
    "commit_index": 42,
    "version": "3.4.30",
}
ANSWERS: tuple[Any, ...] = (MEMBERS,)


def parse(document: Any) -> ClusterView:
    return members_view(document, agent_port=9090)
