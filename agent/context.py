"""The variables a template sees, built from settings, identity and discovered peers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from agent.discovery import Peer, ServiceNames
from agent.identity import PodIdentity


def peer_ordinals(
    *, bootstrap: range, self_ordinal: int, discovered: Sequence[Peer] = ()
) -> list[int]:
    """Ordinals every template lists: the bootstrap set, this pod, and every pod DNS knows.

    The bootstrap set (the first bootstrap_expect ordinals from spec.ordinals.start)
    comes from names alone, so every pod of a new cluster renders the same list whether
    or not its peers resolve yet.
    """
    ordinals = set(bootstrap) | {self_ordinal}
    ordinals.update(peer.ordinal for peer in discovered)
    return sorted(ordinals)


def build_context(
    *,
    names: ServiceNames,
    pod: PodIdentity,
    pod_ip: str | None,
    bootstrap: range,
    peer_port: int | None,
    discovered: Sequence[Peer] = (),
    template_vars: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Template variables. Documented in docs/templates.md; names are part of the interface."""
    by_ordinal = {peer.ordinal: peer for peer in discovered}
    ordinals = peer_ordinals(bootstrap=bootstrap, self_ordinal=pod.ordinal,
                             discovered=discovered)
    peer_pods = [
        {
            "ordinal": ordinal,
            "name": f"{pod.statefulset}-{ordinal}",
            "fqdn": names.pod_fqdn(ordinal),
            "addresses": list(by_ordinal[ordinal].addresses) if ordinal in by_ordinal else [],
            "is_self": ordinal == pod.ordinal,
        }
        for ordinal in ordinals
    ]
    peers = [p["fqdn"] for p in peer_pods]
    context: dict[str, Any] = {
        "namespace": names.namespace,
        "pod_name": pod.name,
        "statefulset": pod.statefulset,
        "ordinal": pod.ordinal,
        "service": names.service,
        "domain": names.domain,
        "service_fqdn": names.service_fqdn,
        "fqdn": names.pod_fqdn(pod.ordinal),
        "bootstrap_expect": len(bootstrap),
        "ordinals_start": bootstrap.start,
        "peers": peers,
        "other_peers": [p["fqdn"] for p in peer_pods if not p["is_self"]],
        "peer_pods": peer_pods,
        "vars": dict(template_vars or {}),
    }
    if pod_ip is not None:
        context["pod_ip"] = pod_ip
    if peer_port is not None:
        context["peer_port"] = peer_port
        context["peer_addresses"] = [f"{fqdn}:{peer_port}" for fqdn in peers]
    return context


VAR_PREFIX = "AGENT_VAR_"


def template_vars(environ: Mapping[str, str]) -> dict[str, str]:
    """``AGENT_VAR_FOO=bar`` env entries as ``{"foo": "bar"}`` for templates."""
    return {
        key[len(VAR_PREFIX) :].lower(): value
        for key, value in environ.items()
        if key.upper().startswith(VAR_PREFIX) and len(key) > len(VAR_PREFIX)
    }
