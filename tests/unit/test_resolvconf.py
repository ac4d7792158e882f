"""The cluster domain: configured, from resolv.conf's search line, or the default."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.resolvconf import cluster_domain, cluster_domain_from_resolv_conf


def test_cluster_domain_sources(tmp_path: Path) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("search ns.svc.corp svc.corp corp\n")
    assert cluster_domain(None, resolv, None) == "corp"
    assert cluster_domain("x.y", resolv, None) == "x.y"
    assert cluster_domain(None, tmp_path / "missing", None) == "cluster.local"


@pytest.mark.parametrize(
    ("text", "namespace", "expected"),
    [
        ("search prod.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n",
         "prod", "cluster.local"),
        ("nameserver 10.96.0.10\nsearch prod.svc.k8s.example svc.k8s.example k8s.example\n",
         None, "k8s.example"),
        ("search svc.svc.corp.internal svc.corp.internal corp.internal\n", "svc",
         "corp.internal"),
        ("search prod.svc.cluster.local.\n", "prod", "cluster.local"),
        ("search example.com\n", "prod", None),
        ("nameserver 1.1.1.1\n", None, None),
        ("", None, None),
    ],
)
def test_cluster_domain_from_resolv_conf(text: str, namespace: str | None,
                                         expected: str | None) -> None:
    assert cluster_domain_from_resolv_conf(text, namespace) == expected
