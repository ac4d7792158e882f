"""A namespace of the real API server made ready for sidecars that run outside pods (the
integration tier, the leave benchmark): the agent's ServiceAccount, Role and RoleBinding
from k8s/base, a StatefulSet object whose ``spec.replicas`` the tests change, and a token
of that ServiceAccount in a file, as a projected volume would hold it."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from player.apiclient import JSON, ApiClient
from player.controlplane import ControlPlane
from player.manifests import build

ROOT = Path(__file__).resolve().parents[1]
_namespaces = itertools.count(1)


class AgentNamespace:
    """Namespace ``<prefix>-<n>`` (unique in this process) with the agent's RBAC."""

    def __init__(self, control_plane: ControlPlane, workdir: Path, *,
                 prefix: str = "agent") -> None:
        self.control_plane = control_plane
        self.admin: ApiClient = control_plane.client()
        self.name = f"{prefix}-{next(_namespaces)}"
        self.token_file = workdir / "token"
        workdir.mkdir(parents=True, exist_ok=True)
        self._create()
        self.write_token(self.mint_token())

    def _create(self) -> None:
        self.admin.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                               "metadata": {"name": self.name}})
        for doc in build(ROOT / "k8s" / "base"):
            api = str(doc["apiVersion"])
            resource = {"ServiceAccount": "serviceaccounts", "Role": "roles",
                        "RoleBinding": "rolebindings"}[doc["kind"]]
            for subject in doc.get("subjects", []):
                subject["namespace"] = self.name
            self.admin.create(api, resource, doc, namespace=self.name)

    def add_statefulset(self, name: str, *, replicas: int, start: int = 0,
                        max_unavailable: int | str | None = None,
                        pod_management: str | None = None) -> JSON:
        """A StatefulSet object the agent reads; its pods can never be scheduled (no node
        has the label its template selects), so nothing but the object exists."""
        labels = {"app.kubernetes.io/name": name}
        spec: dict[str, Any] = {
            "replicas": replicas, "serviceName": name, "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {
                "nodeSelector": {"sts-agent.io/no-such-node": "true"},
                "containers": [{"name": "store", "image": "store"}]}}}
        if start:
            spec["ordinals"] = {"start": start}
        if pod_management is not None:
            spec["podManagementPolicy"] = pod_management
        if max_unavailable is not None:
            spec["updateStrategy"] = {"type": "RollingUpdate",
                                      "rollingUpdate": {"maxUnavailable": max_unavailable}}
        return self.admin.create("apps/v1", "statefulsets", {
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": name, "namespace": self.name}, "spec": spec},
            namespace=self.name)

    def scale(self, name: str, replicas: int) -> None:
        """What `kubectl scale` does: the scale subresource."""
        self.admin.patch("apps/v1", "statefulsets", name, {"spec": {"replicas": replicas}},
                         namespace=self.name, subresource="scale")

    def delete_statefulset(self, name: str) -> None:
        self.admin.delete("apps/v1", "statefulsets", name, namespace=self.name)

    def mint_token(self, seconds: int = 3600) -> str:
        """A new token of the agent's ServiceAccount (the TokenRequest API)."""
        answer = self.admin.create(
            "v1", "serviceaccounts", {"apiVersion": "authentication.k8s.io/v1",
                                      "kind": "TokenRequest",
                                      "spec": {"expirationSeconds": seconds}},
            namespace=self.name, name="sts-agent", subresource="token")
        return str(answer["status"]["token"])

    def write_token(self, token: str) -> None:
        temp = self.token_file.with_suffix(".tmp")
        temp.write_text(token)
        temp.replace(self.token_file)

    def events(self) -> list[JSON]:
        """Events the agent posted here, oldest first: in the order the API server stored
        them (``firstTimestamp`` has whole seconds, and a list comes in name order)."""
        items = self.admin.list("v1", "events", namespace=self.name)["items"]
        mine = [e for e in items if (e.get("source") or {}).get("component") == "sts-agent"]
        return sorted(mine, key=lambda e: int(e["metadata"]["resourceVersion"]))

    def event_reasons(self) -> list[str]:
        return [str(e["reason"]) for e in self.events()]

    def env(self, api_url: str | None = None) -> dict[str, str]:
        """What a sidecar outside a pod needs to reach the API as the agent's account
        (``api_url``: a proxy in front of the API server, else the server itself)."""
        env = {"AGENT_KUBE_API_URL": api_url or self.control_plane.server,
               "AGENT_KUBE_TOKEN_FILE": str(self.token_file), "POD_NAMESPACE": self.name}
        if api_url is None or api_url.startswith("https://"):
            env["AGENT_KUBE_CA_FILE"] = str(self.control_plane.ca)
        return env

    def delete(self) -> None:
        self.admin.delete("v1", "namespaces", self.name)
