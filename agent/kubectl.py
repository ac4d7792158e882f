"""`kubectl sts-agent status <statefulset>`: each pod's membership as its sidecar sees it,
read through the API server's pod proxy with the user's own kubeconfig and RBAC."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import quote

import httpx

AGENT_PORT = 9090
COLUMNS = ("POD", "PHASE", "READY", "MEMBER", "VOTER", "ROLE", "LAG", "VERSION", "LEAVE",
           "REPAIR", "REASON")


class PluginError(Exception):
    """What the plugin could not do, said to the user as it is."""


@dataclass
class PodRow:
    """One pod of the StatefulSet as the API and its sidecar have it."""

    pod: str
    phase: str
    ready: bool
    member: bool | None = None  # None: the sidecar could not tell (or was not asked)
    voter: bool | None = None
    role: str | None = None  # leader, follower or learner
    lag: int | None = None
    version: str | None = None
    leave: str | None = None  # the last leave's outcome: "<result>: <reason>"
    repair: str | None = None  # on the leader: what the repair waits on or is blocked by
    reason: str | None = None  # why the pod is not ready, or why its sidecar did not answer

    def cells(self) -> tuple[str, ...]:
        def say(value: object) -> str:
            if value is None:
                return "-"
            if isinstance(value, bool):
                return "yes" if value else "no"
            return str(value)

        return tuple(say(v) for v in (self.pod, self.phase, self.ready, self.member,
                                      self.voter, self.role, self.lag, self.version,
                                      self.leave, self.repair, self.reason))


def row_of(pod: dict[str, Any], status: dict[str, Any] | None, error: str | None) -> PodRow:
    """A table row from a pod object and its sidecar's /status (or why there is none)."""
    meta, pod_status = pod["metadata"], pod.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                for c in pod_status.get("conditions") or [])
    phase = "Terminating" if meta.get("deletionTimestamp") else pod_status.get("phase", "?")
    row = PodRow(pod=meta["name"], phase=phase, ready=ready, reason=error)
    if status is None:
        return row
    view = status.get("view") or {}
    authority, local = view.get("authority") or {}, view.get("local") or {}
    self_id = view.get("self_id")
    me = next((m for m in authority.get("members", []) if m.get("id") == self_id), None)
    if authority:
        row.member = me is not None
    if me is not None:
        row.voter = bool(me.get("voter"))
        leader = authority.get("leader_id")  # none known, or a store with no leader (Galera)
        row.role = (None if leader is None else "leader" if leader == self_id
                    else "follower" if row.voter else "learner")
    row.lag = view.get("lag")
    row.version = local.get("version") or authority.get("version")
    leave = status.get("leave")
    if leave:
        row.leave = f"{leave['result']}: {leave['reason']}"
    repair = status.get("repair") or {}
    if repair.get("blocked"):
        row.repair = f"blocked: {repair['blocked']}"
    elif repair.get("waiting"):
        row.repair = "; ".join(f"{name}: {why}" for name, why in repair["waiting"].items())
    failed = [c for c in (status.get("verdict") or {}).get("checks", []) if not c.get("ok")]
    if failed and row.reason is None:
        row.reason = f"{failed[0]['name']}: {failed[0]['reason']}"
    return row


def agent_port(pod: dict[str, Any]) -> int:
    """The sidecar's port: the one named ``agent`` in the pod, else the agent's default."""
    spec = pod.get("spec") or {}
    for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
        for port in container.get("ports", []):
            if port.get("name") == "agent":
                return int(port["containerPort"])
    return AGENT_PORT


def ordinal(pod: dict[str, Any]) -> int:
    suffix = str(pod["metadata"]["name"]).rsplit("-", 1)[-1]
    return int(suffix) if suffix.isdigit() else -1


class Cluster:
    """The API server as the user's kubeconfig reaches it (lightkube's config handling)."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def get(self, path: str, **params: str) -> dict[str, Any]:
        try:
            response = self.http.get(path, params=params)
        except httpx.HTTPError as exc:
            raise PluginError(f"GET {path}: {exc}") from None
        if response.status_code != 200:
            raise PluginError(f"GET {path}: {response.status_code} {message(response)}")
        answer = response.json()
        if not isinstance(answer, dict):
            raise PluginError(f"GET {path}: not a JSON object")
        return answer

    def rows(self, namespace: str, name: str) -> list[PodRow]:
        """Every pod of StatefulSet ``name``, lowest ordinal first, with its sidecar's view."""
        ns = quote(namespace, safe="")
        statefulset = self.get(f"/apis/apps/v1/namespaces/{ns}/statefulsets/{quote(name)}")
        labels = statefulset["spec"]["selector"].get("matchLabels") or {}
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        pods = self.get(f"/api/v1/namespaces/{ns}/pods", labelSelector=selector)["items"]
        rows = []
        for pod in sorted(pods, key=ordinal):
            status, error = None, None
            if (pod.get("status") or {}).get("podIP"):
                proxy = (f"/api/v1/namespaces/{ns}/pods/{pod['metadata']['name']}:"
                         f"{agent_port(pod)}/proxy/status")
                try:
                    status = self.get(proxy)
                except PluginError as exc:
                    error = f"no /status: {exc}"
            else:
                error = "no address yet"
            rows.append(row_of(pod, status, error))
        return rows


def message(response: httpx.Response) -> str:
    """The API server's own words for a refusal (a Status' message), else the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:200]
    return str(body.get("message", body)) if isinstance(body, dict) else str(body)


def table(rows: Sequence[PodRow]) -> str:
    lines = [COLUMNS, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS) - 1)]
    return "\n".join("   ".join([*(cell.ljust(w) for cell, w in zip(line, widths, strict=False)),
                                 line[-1]]).rstrip() for line in lines)


def connect(kubeconfig: str | None, context: str | None) -> tuple[httpx.Client, str]:
    """An HTTP client for the API server and the context's namespace, as kubectl would."""
    from lightkube.config.client_adapter import Client, ConnectionParams
    from lightkube.config.kubeconfig import KubeConfig
    from lightkube.core.exceptions import ConfigError

    # kubectl's order: --kubeconfig, then $KUBECONFIG (its first file that exists), then
    # ~/.kube/config, then the pod's service account.
    listed = [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    found = [p for p in [*listed, os.path.expanduser("~/.kube/config")] if os.path.exists(p)]
    path = kubeconfig or (found[0] if found else None)
    try:
        config = (KubeConfig.from_file(path) if path
                  else KubeConfig.from_service_account()).get(context_name=context)
        assert config is not None
        return Client(config, ConnectionParams(trust_env=False)), config.namespace
    except (ConfigError, OSError, AssertionError, KeyError) as exc:
        raise PluginError(f"no usable kubeconfig: {exc}") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="kubectl sts-agent",
        description="What the sts-agent sidecars of a StatefulSet see, pod by pod.")
    commands = parser.add_subparsers(dest="command", required=True)
    status = commands.add_parser(
        "status", help="one row a pod: phase, Ready, member, voter, role, lag, version, the "
                       "last leave, the repair's waits, why not ready")
    status.add_argument("statefulset")
    status.add_argument("-n", "--namespace", help="default: the context's")
    status.add_argument("-o", "--output", choices=("table", "json"), default="table")
    status.add_argument("--kubeconfig", help="default: $KUBECONFIG or ~/.kube/config")
    status.add_argument("--context")
    args = parser.parse_args(argv)
    try:
        http, default_namespace = connect(args.kubeconfig, args.context)
        with http:
            namespace = args.namespace or default_namespace
            rows = Cluster(http).rows(namespace, args.statefulset)
    except PluginError as exc:
        print(f"kubectl sts-agent: {exc}", file=sys.stderr)
        return 1
    if args.output == "json":
        print(json.dumps({"namespace": namespace, "statefulset": args.statefulset,
                          "pods": [asdict(row) for row in rows]}, indent=2))
    else:
        print(table(rows))
    return 0
