"""charts/sts-agent installed, upgraded and uninstalled with Helm on the real control plane,
its pods run by real nodes on this host: the e2e tier's player for the chart.

>>> release = HelmRelease("etcd", workdir, control_plane=plane, namespace="etcd").start(3)
>>> release.upgrade(podAnnotations={"rolled": "1"}); release.scale(2); release.uninstall()
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from player.controlplane import ControlPlane
from player.manifests import CHART, example_of, helm_binary, helm_template
from player.statefulset import StatefulSetPlayer

# The label a namespace carries for restricted Pod Security (k8s/<store>/namespace.yaml).
RESTRICTED = "pod-security.kubernetes.io/enforce=restricted"


class HelmRelease(StatefulSetPlayer):
    """The chart's release of ``store`` (named ``release``, default the store's name) in
    ``namespace`` (made with restricted Pod
    Security, as the chart's notes ask), with ``values`` (one ``--set-json`` each).
    `helm install`, `helm upgrade` and `helm uninstall` are Helm's own, against the
    control plane as its admin; pods, faults and observation are the StatefulSetPlayer's.
    """

    def __init__(self, store: str, workdir: Path, *, control_plane: ControlPlane,
                 namespace: str, values: dict[str, Any] | None = None,
                 nodes: int = 1, release: str | None = None) -> None:
        self.release = release or store
        self.values: dict[str, Any] = {"store": store, **(values or {})}
        example = example_of(helm_template(self.release, namespace, self.values),
                             f"{CHART} for {store}")
        super().__init__(CHART, workdir, control_plane=control_plane, namespace=namespace,
                         nodes=nodes, example=example)

    def helm(self, *args: str) -> str:
        """helm of the pinned release in this namespace as admin; its output (RuntimeError
        with helm's words when it fails)."""
        command = [helm_binary(), *args, "--namespace", self.namespace,
                   "--kubeconfig", str(self.control_plane.kubeconfig())]
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            raise RuntimeError(f"helm {args[0]} failed: {result.stderr.strip()}")
        return result.stdout

    def _chart_args(self) -> list[str]:
        self.values["replicaCount"] = self.replicas
        return [str(CHART), *(arg for key, value in self.values.items()
                              for arg in ("--set-json", f"{key}={json.dumps(value)}"))]

    def start(self, replicas: int | None = None) -> HelmRelease:
        """Control plane (if its own), the nodes, the namespace, then `helm install`;
        returns when ``replicas`` (default: the chart's) pods are Ready."""
        self.bring_up()
        self.control_plane.kubectl("create", "namespace", self.namespace)
        self.control_plane.kubectl("label", "namespace", self.namespace, RESTRICTED)
        if replicas is not None:
            self.replicas = replicas
        self.install()
        return self

    def install(self, **values: Any) -> None:
        """`helm install` (again, after ``uninstall``), then wait for the pods Ready."""
        self.values.update(values)
        self.helm("install", self.release, *self._chart_args())
        self.wait_ready()

    def upgrade(self, **values: Any) -> None:
        """`helm upgrade` with ``values`` changed; returns once the StatefulSet has rolled
        every pod to what was asked (none when the pod template is the same)."""
        self.values.update(values)
        self.helm("upgrade", self.release, *self._chart_args())
        self.wait_rolled_out()

    def apply(self) -> None:
        self.helm("upgrade", self.release, *self._chart_args())

    def scale(self, replicas: int, *, timeout: float = 180.0) -> None:
        """`helm upgrade --set replicaCount=N`, then wait for the controller to get there."""
        self.replicas = replicas
        self.apply()
        self.wait_ready(timeout=timeout)

    def uninstall(self, *, timeout: float = 180.0) -> None:
        """`helm uninstall`: the release's objects deleted; returns once its pods are gone
        (each ran its preStop as the garbage collector deleted it)."""
        self.helm("uninstall", self.release, "--wait")
        self._wait(lambda: not self.api_pods(), f"every pod of {self.name} gone", timeout)

    def claims(self) -> list[str]:
        """The PersistentVolumeClaims in this namespace, by name."""
        found = self.control_plane.client().list("v1", "persistentvolumeclaims",
                                                 namespace=self.namespace)["items"]
        return sorted(str(c["metadata"]["name"]) for c in found)
