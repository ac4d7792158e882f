"""The cluster domain: configured, else implied by the pod's resolv.conf, else the default."""

from __future__ import annotations

from pathlib import Path

DEFAULT_CLUSTER_DOMAIN = "cluster.local"


def cluster_domain_from_resolv_conf(text: str, namespace: str | None = None) -> str | None:
    """The cluster domain implied by a pod's resolv.conf ``search`` line, if any.

    Kubelet writes ``search <ns>.svc.<domain> svc.<domain> <domain>``.
    """
    for line in text.splitlines():
        parts = line.split()
        if not parts or parts[0] != "search":
            continue
        entries = [entry.rstrip(".").lower() for entry in parts[1:]]
        # The namespace entry first: a namespace called "svc" would fool the generic rule.
        prefixes = ([f"{namespace}.svc."] if namespace else []) + ["svc."]
        for prefix in prefixes:
            for entry in entries:
                if entry.startswith(prefix) and len(entry) > len(prefix):
                    return entry[len(prefix) :]
    return None


def cluster_domain(configured: str | None, resolv_conf: Path, namespace: str | None) -> str:
    """``configured``, else the domain in resolv.conf's search line, else the default."""
    if configured:
        return configured
    try:
        text = resolv_conf.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return DEFAULT_CLUSTER_DOMAIN
    return cluster_domain_from_resolv_conf(text, namespace) or DEFAULT_CLUSTER_DOMAIN
