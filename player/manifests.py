"""The objects of one k8s/ example, as `kustomize build` renders them for `kubectl apply`."""

from __future__ import annotations

import base64
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from player.peers import cached_binary


def kustomize_binary() -> str:
    return cached_binary("kustomize", "KUSTOMIZE_VERSION")


def build(directory: Path) -> list[dict[str, Any]]:
    """Every object `kustomize build <directory>` renders."""
    result = subprocess.run([kustomize_binary(), "build", str(directory)], check=True,
                            capture_output=True, text=True, timeout=60)
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@dataclass
class Example:
    """One store example: its StatefulSet, Services, ConfigMaps, Secrets and the Role's rules."""

    statefulset: dict[str, Any]
    services: dict[str, dict[str, Any]]
    config_maps: dict[str, dict[str, str]] = field(default_factory=dict)
    secrets: dict[str, dict[str, bytes]] = field(default_factory=dict)
    rules: list[dict[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.statefulset["metadata"]["name"])

    @property
    def spec(self) -> dict[str, Any]:
        spec = self.statefulset["spec"]
        assert isinstance(spec, dict)
        return spec

    @property
    def pod_spec(self) -> dict[str, Any]:
        pod = self.spec["template"]["spec"]
        assert isinstance(pod, dict)
        return pod

    @property
    def service_name(self) -> str:
        return str(self.spec["serviceName"])

    @property
    def policy(self) -> str:
        return str(self.spec.get("podManagementPolicy", "OrderedReady"))

    @property
    def grace_seconds(self) -> float:
        return float(self.pod_spec.get("terminationGracePeriodSeconds", 30))

    def client_services(self) -> list[str]:
        """Services other than the governing one that select these pods (ready only)."""
        return [name for name, svc in self.services.items()
                if name != self.service_name and svc["spec"].get("clusterIP") != "None"]

    def granted(self) -> set[tuple[str, str, str]]:
        """(api group, resource, verb) the Role grants."""
        return {(group, resource, verb)
                for rule in self.rules for group in rule.get("apiGroups", [])
                for resource in rule.get("resources", []) for verb in rule.get("verbs", [])}


def load(directory: Path) -> Example:
    """Render ``directory`` and pick out what the player plays."""
    statefulsets: list[dict[str, Any]] = []
    services: dict[str, dict[str, Any]] = {}
    config_maps: dict[str, dict[str, str]] = {}
    secrets: dict[str, dict[str, bytes]] = {}
    rules: list[dict[str, Any]] = []
    for doc in build(directory):
        kind, name = doc.get("kind"), doc.get("metadata", {}).get("name")
        if kind == "StatefulSet":
            statefulsets.append(doc)
        elif kind == "Service":
            services[name] = doc
        elif kind == "ConfigMap":
            config_maps[name] = {k: str(v) for k, v in (doc.get("data") or {}).items()}
        elif kind == "Secret":
            data = {k: base64.b64decode(v) for k, v in (doc.get("data") or {}).items()}
            data.update({k: str(v).encode() for k, v in (doc.get("stringData") or {}).items()})
            secrets[name] = data
        elif kind == "Role":
            rules.extend(doc.get("rules") or [])
    if len(statefulsets) != 1:
        raise ValueError(f"{directory}: expected one StatefulSet, found {len(statefulsets)}")
    return Example(statefulsets[0], services, config_maps, secrets, rules)
