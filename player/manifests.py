"""The objects of one k8s/ example, as `kustomize build` renders them for `kubectl apply`, and of
the Helm chart, as `helm template` renders them."""

from __future__ import annotations

import base64
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from player.peers import ROOT, cached_binary

CHART = ROOT / "charts" / "sts-agent"


def kustomize_binary() -> str:
    return cached_binary("kustomize", "KUSTOMIZE_VERSION")


def helm_binary() -> str:
    return cached_binary("helm", "HELM_VERSION")


def helm_template(release: str, namespace: str, values: dict[str, Any],
                  kube_version: str = "") -> list[dict[str, Any]]:
    """Every object `helm template <release> charts/sts-agent` renders with ``values`` (as
    one --set-json each); ValueError with helm's words when it refuses them."""
    command = [helm_binary(), "template", release, str(CHART), "--namespace", namespace]
    if kube_version:
        command += ["--kube-version", kube_version]
    for key, value in values.items():
        command += ["--set-json", f"{key}={json.dumps(value)}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise ValueError(result.stderr.strip())
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def build(directory: Path) -> list[dict[str, Any]]:
    """Every object `kustomize build <directory>` renders."""
    result = subprocess.run([kustomize_binary(), "build", str(directory)], check=True,
                            capture_output=True, text=True, timeout=60)
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@dataclass
class Example:
    """One store example as rendered: its StatefulSet, Services and Secrets (what the
    player needs to know of it before `kubectl apply -k` creates the objects)."""

    statefulset: dict[str, Any]
    services: dict[str, dict[str, Any]]
    secrets: dict[str, dict[str, bytes]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.statefulset["metadata"]["name"])

    @property
    def store(self) -> str:
        """The store its agent runs (AGENT_BACKEND in the pod template), else its name."""
        pod = self.statefulset["spec"]["template"]["spec"]
        for container in [*pod.get("initContainers", []), *pod.get("containers", [])]:
            for item in container.get("env", []):
                if item.get("name") == "AGENT_BACKEND" and "value" in item:
                    return str(item["value"])
        return self.name

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


def load(directory: Path) -> Example:
    """Render ``directory`` and pick out what the player needs of it."""
    return example_of(build(directory), str(directory))


def example_of(documents: list[dict[str, Any]], source: str) -> Example:
    """What the player needs of rendered objects (kustomize's or Helm's)."""
    statefulsets: list[dict[str, Any]] = []
    services: dict[str, dict[str, Any]] = {}
    secrets: dict[str, dict[str, bytes]] = {}
    for doc in documents:
        kind, name = doc.get("kind"), doc.get("metadata", {}).get("name")
        if kind == "StatefulSet":
            statefulsets.append(doc)
        elif kind == "Service":
            services[name] = doc
        elif kind == "Secret":
            data = {k: base64.b64decode(v) for k, v in (doc.get("data") or {}).items()}
            data.update({k: str(v).encode() for k, v in (doc.get("stringData") or {}).items()})
            secrets[name] = data
    if len(statefulsets) != 1:
        raise ValueError(f"{source}: expected one StatefulSet, found {len(statefulsets)}")
    return Example(statefulsets[0], services, secrets)
