"""Real answers of a Consul server"s HTTP API (1.22), for the parser property tests."""

from __future__ import annotations

from typing import Any

from agent.model import ClusterView
from agent.stores.consul.api import build_view

AGENT_SELF = {"Config": {"NodeID": "id-0",
                         "NodeName": "consul-0",
                         "Server": True,
                         "Version": "1.22.2"}}
CONFIGURATION = {"Servers": [{"ID": "id-0",
                              "Node": "consul-0",
                              "Address": "a:8300",
                              "Leader": True,
                              "Voter": True}],
                 "Index": 5}
HEALTH = {"Healthy": True, "Servers": [{"ID": "id-0", "LastIndex": 12, "Healthy": True}]}

ANSWERS = (AGENT_SELF, CONFIGURATION, HEALTH)


def parse(agent_self: Any, configuration: Any, health: Any) -> ClusterView:
    return build_view(agent_self, configuration, health, api_port=8500, scheme="http")
