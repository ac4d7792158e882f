"""Local PersistentVolumes for the claims the scheduler places on a node, as a local-path
provisioner does in a cluster: a directory per claim, deleted when its claim is."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from player.apiclient import ApiError
from player.controlplane import PROVISIONER, STORAGE_CLASS, ControlPlane

if TYPE_CHECKING:
    from collections.abc import Callable

RESYNC_SECONDS = 0.2
# The node a volume was made on, so that each node's provisioner lists only its own: the
# control plane is shared by a worker's tests, and the volumes of the nodes already gone
# stay Released (nobody reclaims them), hundreds over a run, listed five times a second
# by every node.
NODE_LABEL = "player.sts-agent.io/node"


class LocalProvisioner:
    """Provisions claims of the player's StorageClass selected for node ``node`` under
    ``directory``; ``note`` hears what it did (the node's event list)."""

    def __init__(self, control_plane: ControlPlane, node: str, directory: Path,
                 note: Callable[[str], None]) -> None:
        self.node = node
        self.directory = directory
        self.note = note
        # A cluster component with its own rights, not the node's.
        self.api = control_plane.client("system:sts-agent-player-provisioner", "system:masters")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"{node}-volumes", daemon=True)

    def start(self) -> LocalProvisioner:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _loop(self) -> None:
        while not self._stop.wait(RESYNC_SECONDS):
            try:
                self._provision()
                self._reclaim()
            except (ApiError, httpx.HTTPError) as exc:
                self.note(f"provisioning failed: {exc}")

    def _provision(self) -> None:
        claims = self.api.list("v1", "persistentvolumeclaims")["items"]
        for claim in claims:
            meta, spec = claim["metadata"], claim["spec"]
            annotations = meta.get("annotations") or {}
            if (spec.get("storageClassName") != STORAGE_CLASS or spec.get("volumeName")
                    or annotations.get("volume.kubernetes.io/selected-node") != self.node
                    or meta.get("deletionTimestamp")):
                continue
            name = f"pvc-{meta['uid']}"
            path = self.directory / name
            path.mkdir(parents=True, exist_ok=True)
            volume = {
                "apiVersion": "v1", "kind": "PersistentVolume",
                "metadata": {"name": name, "labels": {NODE_LABEL: self.node},
                             "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER}},
                "spec": {
                    "capacity": {"storage": spec["resources"]["requests"]["storage"]},
                    "accessModes": spec.get("accessModes", ["ReadWriteOnce"]),
                    "persistentVolumeReclaimPolicy": "Delete",
                    "storageClassName": STORAGE_CLASS, "volumeMode": "Filesystem",
                    "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                 "namespace": meta["namespace"], "name": meta["name"],
                                 "uid": meta["uid"]},
                    "local": {"path": str(path)},
                    "nodeAffinity": {"required": {"nodeSelectorTerms": [{
                        "matchExpressions": [{"key": "kubernetes.io/hostname",
                                              "operator": "In", "values": [self.node]}]}]}},
                },
            }
            try:
                self.api.create("v1", "persistentvolumes", volume)
                self.note(f"provisioned {name} for {meta['namespace']}/{meta['name']}")
            except ApiError as exc:
                if exc.status != 409:
                    raise

    def _reclaim(self) -> None:
        volumes = self.api.list("v1", "persistentvolumes",
                                labels=f"{NODE_LABEL}={self.node}")["items"]
        for volume in volumes:
            spec = volume["spec"]
            local = Path(str(spec.get("local", {}).get("path", "")))
            if (volume.get("status", {}).get("phase") == "Released"
                    and spec.get("persistentVolumeReclaimPolicy") == "Delete"
                    and self.directory in local.parents):
                self.api.delete("v1", "persistentvolumes", volume["metadata"]["name"])
                shutil.rmtree(local, ignore_errors=True)
