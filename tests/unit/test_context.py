"""Template variables: peer list rules and the documented names."""

from __future__ import annotations

from agent.context import build_context, peer_ordinals, template_vars
from agent.discovery import Peer, ServiceNames
from agent.identity import PodIdentity

NAMES = ServiceNames(statefulset="consul", service="consul", namespace="prod",
                     domain="cluster.local")


def fqdn(i: int) -> str:
    return f"consul-{i}.consul.prod.svc.cluster.local"


def test_peer_ordinals_bootstrap_set_self_and_discovered() -> None:
    assert peer_ordinals(bootstrap=range(3), self_ordinal=0) == [0, 1, 2]
    assert peer_ordinals(bootstrap=range(3), self_ordinal=4) == [0, 1, 2, 4]
    discovered = [Peer(3, "consul-3", fqdn(3), ("10.0.0.4",))]
    assert peer_ordinals(bootstrap=range(1), self_ordinal=0, discovered=discovered) == [0, 3]
    # spec.ordinals.start 1: the bootstrap set is 1..3, ordinal 0 never exists.
    assert peer_ordinals(bootstrap=range(1, 4), self_ordinal=1) == [1, 2, 3]


def test_context_names_and_values() -> None:
    context = build_context(
        names=NAMES,
        pod=PodIdentity("consul", 1),
        pod_ip="10.0.0.2",
        bootstrap=range(3),
        peer_port=8301,
        discovered=[Peer(0, "consul-0", fqdn(0), ("10.0.0.1",))],
        template_vars={"datacenter": "dc1"},
    )
    assert context["namespace"] == "prod"
    assert context["pod_name"] == "consul-1"
    assert context["statefulset"] == "consul"
    assert context["ordinal"] == 1
    assert context["pod_ip"] == "10.0.0.2"
    assert context["fqdn"] == fqdn(1)
    assert context["service_fqdn"] == "consul.prod.svc.cluster.local"
    assert context["domain"] == "cluster.local"
    assert context["peers"] == [fqdn(0), fqdn(1), fqdn(2)]
    assert context["other_peers"] == [fqdn(0), fqdn(2)]
    assert context["peer_addresses"] == [f"{fqdn(i)}:8301" for i in range(3)]
    assert context["peer_pods"][0] == {"ordinal": 0, "name": "consul-0", "fqdn": fqdn(0),
                                       "addresses": ["10.0.0.1"], "is_self": False}
    assert context["peer_pods"][1]["is_self"] is True
    assert context["vars"] == {"datacenter": "dc1"}


def test_optional_names_absent_when_unknown() -> None:
    context = build_context(names=NAMES, pod=PodIdentity("consul", 0), pod_ip=None,
                            bootstrap=range(1), peer_port=None)
    assert "pod_ip" not in context
    assert "peer_addresses" not in context and "peer_port" not in context


def test_template_vars() -> None:
    env = {"AGENT_VAR_DATACENTER": "dc1", "AGENT_VAR_": "ignored", "AGENT_SERVICE": "x",
           "OTHER": "y"}
    assert template_vars(env) == {"datacenter": "dc1"}
