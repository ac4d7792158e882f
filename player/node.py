"""A Node of the real control plane played by this process, as a kubelet plays one: it
registers, renews its Lease, runs the pods the scheduler binds to it (player.kubelet),
reports their status, confirms their deletion, and provisions their local volumes.
"""

from __future__ import annotations

import datetime
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from player.apiclient import JSON, ApiClient, ApiError
from player.controlplane import ControlPlane
from player.kubelet import Pod
from player.netns import Network
from player.provisioner import LocalProvisioner

if TYPE_CHECKING:
    from collections.abc import Callable

LEASE_SECONDS = 40
RENEW_SECONDS = 5.0


def now() -> str:
    """RFC 3339 in UTC, as the API writes times."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_now() -> str:
    """RFC 3339 with microseconds (a Lease's MicroTime)."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Node:
    """Node ``name``: its pods get addresses on ``network`` and resolve names through
    ``dns_server`` (the player's cluster DNS on the bridge)."""

    def __init__(self, control_plane: ControlPlane, name: str, *, network: Network,
                 workdir: Path) -> None:
        self.control_plane = control_plane
        self.name = name
        self.network = network
        self.workdir = workdir
        self.api: ApiClient = control_plane.node_client(name)
        self.volumes = LocalProvisioner(control_plane, name, workdir / "volumes", self._note)
        self.pods: dict[str, Pod] = {}  # uid -> the pod being played
        self.events: list[str] = []
        self.on_change: Callable[[], None] | None = None  # e.g. the player's DNS
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        workdir.mkdir(parents=True, exist_ok=True)

    # --- registration -------------------------------------------------------------------
    def start(self) -> Node:
        body = {"apiVersion": "v1", "kind": "Node", "metadata": {
            "name": self.name, "labels": {"kubernetes.io/hostname": self.name,
                                          "kubernetes.io/os": "linux",
                                          "kubernetes.io/arch": "amd64"}}}
        try:
            self.api.create("v1", "nodes", body)
        except ApiError as exc:
            if exc.status != 409:
                raise
        self._report_node()
        self._renew_lease()
        for target, name in ((self._lease_loop, "lease"), (self._pod_loop, "pods")):
            thread = threading.Thread(target=target, name=f"{self.name}-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        self.volumes.start()
        return self

    def _report_node(self) -> None:
        stamp = now()
        resources = {"cpu": "2", "memory": "24Gi", "pods": "110", "ephemeral-storage": "50Gi"}
        status = {
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "the player runs this node's pods",
                            "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}],
            "capacity": resources, "allocatable": resources,
            "addresses": [{"type": "InternalIP", "address": self.network.gateway},
                          {"type": "Hostname", "address": self.name}],
            "nodeInfo": {"kubeletVersion": "player", "kubeProxyVersion": "",
                         "operatingSystem": "linux", "architecture": "amd64",
                         "containerRuntimeVersion": "player://netns", "machineID": "",
                         "systemUUID": "", "bootID": "", "kernelVersion": "",
                         "osImage": "sts-agent player"},
        }
        self.api.patch("v1", "nodes", self.name, {"status": status}, subresource="status",
                       kind="strategic")

    def _renew_lease(self) -> None:
        namespace = "kube-node-lease"
        spec = {"holderIdentity": self.name, "leaseDurationSeconds": LEASE_SECONDS,
                "renewTime": micro_now()}
        try:
            self.api.patch("coordination.k8s.io/v1", "leases", self.name, {"spec": spec},
                           namespace=namespace)
        except ApiError as exc:
            if exc.status != 404:
                raise
            self.api.create("coordination.k8s.io/v1", "leases", {
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": namespace,
                             "ownerReferences": [{"apiVersion": "v1", "kind": "Node",
                                                  "name": self.name,
                                                  "uid": self._node_uid()}]},
                "spec": spec}, namespace=namespace)

    def _node_uid(self) -> str:
        node = self.api.get("v1", "nodes", self.name)
        assert node is not None
        return str(node["metadata"]["uid"])

    def _lease_loop(self) -> None:
        while not self._stop.wait(RENEW_SECONDS):
            try:
                self._renew_lease()
            except (ApiError, httpx.HTTPError) as exc:
                self._note(f"lease renewal failed: {exc}")

    def _note(self, event: str) -> None:
        self.events.append(f"{now()} {event}")

    # --- pods ----------------------------------------------------------------------------
    def _pod_loop(self) -> None:
        """List, then watch the pods bound to this node; relist when the watch expires."""
        selector = f"spec.nodeName={self.name}"
        version: str | None = None
        while not self._stop.is_set():
            try:
                if version is None:
                    listed = self.api.list("v1", "pods", fields=selector)
                    for pod in listed["items"]:
                        self._sync(pod, deleted=False)
                    version = str(listed["metadata"]["resourceVersion"])
                for kind, obj in self.api.watch("v1", "pods", fields=selector,
                                                resource_version=version,
                                                timeout_seconds=30):
                    if self._stop.is_set():
                        return
                    if kind == "ERROR":
                        version = None  # 410 Gone: relist
                        break
                    version = str(obj["metadata"]["resourceVersion"])
                    if kind != "BOOKMARK":
                        self._sync(obj, deleted=kind == "DELETED")
            except (ApiError, httpx.HTTPError) as exc:
                if self._stop.is_set():
                    return
                self._note(f"pod watch failed: {exc}; relisting")
                version = None
                self._stop.wait(0.5)  # back-off before relisting

    def _sync(self, obj: JSON, *, deleted: bool) -> None:
        meta = obj["metadata"]
        uid = str(meta["uid"])
        with self._lock:
            pod = self.pods.get(uid)
            if pod is None:
                if deleted or meta.get("deletionTimestamp") or \
                        obj.get("status", {}).get("phase") in ("Succeeded", "Failed"):
                    return
                pod = Pod(self, obj)
                self.pods[uid] = pod
                pod.start()
                return
        if deleted and not pod.terminating:
            # Force-deleted (grace 0, or its node gone): no hook, no grace.
            self._in_background(pod.kill, f"kill {pod.name}")
            with self._lock:
                self.pods.pop(uid, None)
        elif deleted and pod.phase == "Gone":  # stopped here before (its node shut down)
            with self._lock:
                self.pods.pop(uid, None)
        elif meta.get("deletionTimestamp") and not pod.terminating:
            grace = float(meta.get("deletionGracePeriodSeconds") or 0)
            pod.terminating = True

            def terminate() -> None:
                pod.delete(grace=grace)
                self.confirm_deleted(pod)

            self._in_background(terminate, f"terminate {pod.name}")

    def _in_background(self, work: Callable[[], None], what: str) -> None:
        def run() -> None:
            try:
                work()
            except Exception as exc:  # reported, never silent: a stuck pod shows it
                self._note(f"{what} failed: {type(exc).__name__}: {exc}")

        threading.Thread(target=run, name=what, daemon=True).start()

    def confirm_deleted(self, pod: Pod) -> None:
        """The kubelet's last word on a pod: its containers are gone, the object may go."""
        self.api.delete("v1", "pods", pod.name, namespace=pod.namespace, grace_seconds=0,
                        uid=pod.uid)
        with self._lock:
            self.pods.pop(pod.uid, None)

    def report(self, pod: Pod) -> None:
        """Send a pod's status (phase, IP, conditions, containers) to the API."""
        body = {"metadata": {"uid": pod.uid}, "status": pod.status()}
        try:
            self.api.patch("v1", "pods", pod.name, body, namespace=pod.namespace,
                           subresource="status")
        except ApiError as exc:
            if exc.status not in (404, 409, 422):  # gone, or a successor of the same name
                self._note(f"status of {pod.name} not reported: {exc}")
        except httpx.HTTPError as exc:
            self._note(f"status of {pod.name} not reported: {exc}")
        if self.on_change is not None:
            self.on_change()

    # --- end ---------------------------------------------------------------------------------
    def kill_all(self) -> None:
        """SIGKILL every pod's containers, no hooks (the end of a test)."""
        with self._lock:
            pods = list(self.pods.values())
        threads = [threading.Thread(target=pod.kill) for pod in pods]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def stop(self, *, deregister: bool = True) -> None:
        self._stop.set()
        self.volumes.stop()
        self.kill_all()
        if deregister:
            try:
                self.volumes.api.delete("v1", "nodes", self.name)
            except (ApiError, httpx.HTTPError):
                pass  # the control plane may be gone already

    def describe(self) -> Any:
        return self.events[-20:]
