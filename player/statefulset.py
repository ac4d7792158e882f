"""One k8s/ example applied to the real control plane with `kubectl apply -k`, its pods
run by a real node on this host: the Python API the e2e tests, the demo and the soak use.

>>> cluster = StatefulSetPlayer(Path("k8s/etcd"), workdir).start(3)
>>> cluster.scale(5); cluster.rolling_restart(); cluster.members()

The StatefulSet controller, the scheduler, RBAC, tokens, Events, PDBs and garbage
collection are the real ones, and so are the kubelet, containerd, the CNI plugins and
CoreDNS of the node (player.realnode) running the images of `make images`: the player
applies, waits, observes and injects faults (player.realpods), and provisions local
volumes as a cloud would.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
import yaml

from player import realpods
from player.apiclient import JSON, ApiError
from player.controlplane import ControlPlane
from player.manifests import Example, load
from player.realnode import RealNode
from player.realpods import RealPod
from player.wait import GiveUp, wait_until

# The finalizer that keeps a real-node pod's object while its node is "shut down".
SHUT_DOWN = "player.sts-agent/node-shut-down"
# How often a wait on the API polls it: each check lists this StatefulSet's pods (TLS and
# JSON in the player, a list served by the API server), and on two cores a poll every
# 50 ms cost the test process and the API server a sizeable share of the CPU the pods
# need; the states waited for last seconds.
API_POLL_SECONDS = 0.25


class StatefulSetPlayer:
    """Plays the StatefulSet of ``example_dir`` (e.g. ``k8s/etcd``) in ``workdir``.

    ``control_plane``: a running one to share (tests), else the player starts its own.
    ``namespace``: where the example goes (default: its own); ``overrides``: extra env
    for the sts-agent containers, applied as a kustomize patch (test knobs);
    ``json_patches``: JSON patch operations on the StatefulSet (benchmark variants);
    ``images``: image repository -> tag, as kustomize's ``images:`` (a store version).
    The player starts ``nodes`` real nodes of its own (player.realnode) under
    ``workdir/node``, ``workdir/node-1``, …; ``node`` is the first. ``example``: the
    objects as rendered already (player.helmrelease), instead of ``example_dir``'s.
    """

    def __init__(self, example_dir: Path, workdir: Path, *,
                 overrides: dict[str, str] | None = None,
                 control_plane: ControlPlane | None = None, namespace: str | None = None,
                 echo: bool = False, json_patches: list[JSON] | None = None,
                 images: dict[str, str] | None = None, nodes: int = 1,
                 example: Example | None = None) -> None:
        self.example_dir = example_dir.resolve()
        self.example: Example = example or load(example_dir)
        self.workdir = workdir
        workdirs = [workdir / ("node" if i == 0 else f"node-{i}") for i in range(nodes)]
        for path in workdirs:
            shutil.rmtree(path, ignore_errors=True)
        workdir.mkdir(parents=True, exist_ok=True)
        self.own_control_plane = control_plane is None
        self.control_plane = control_plane or ControlPlane(workdir / "control-plane",
                                                           echo=echo)
        self.namespace = namespace or str(
            self.example.statefulset["metadata"].get("namespace", "default"))
        self.overrides = dict(overrides or {})
        self.json_patches = list(json_patches or [])  # RFC 6902 ops on the StatefulSet
        self.images = dict(images or {})  # changed and applied again: a rolling update
        self.nodes = [RealNode(self.control_plane, path) for path in workdirs]
        self.lost: list[RealNode] = []  # nodes lost on purpose (lose_node)
        self.replicas = int(self.example.spec.get("replicas", 1))
        self._http = httpx.Client(timeout=2.0, trust_env=False)

    @property
    def name(self) -> str:
        return self.example.name

    @property
    def node(self) -> RealNode:
        return self.nodes[0]

    def _running_nodes(self) -> list[RealNode]:
        return [node for node in self.nodes if node not in self.lost]

    @property
    def api(self) -> Any:
        return self.control_plane.client()

    def kubectl(self, *args: str, check: bool = True) -> str:
        """kubectl in this player's namespace; its output."""
        result = self.control_plane.kubectl("-n", self.namespace, *args, check=check)
        return result.stdout

    # --- setup -------------------------------------------------------------------------------
    def start(self, replicas: int | None = None) -> StatefulSetPlayer:
        """Control plane (if its own), the node, then `kubectl apply -k` of the example;
        returns when ``replicas`` (default: the manifest's) pods are Ready."""
        self.bring_up()
        if replicas is not None:
            self.replicas = replicas
        self.kubectl("apply", "-k", str(self._overlay()))
        self.wait_ready()
        return self

    def bring_up(self) -> None:
        """The control plane (if the player's own) and the nodes, started."""
        if self.own_control_plane and not self.control_plane.address:
            self.control_plane.start()
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(RealNode.start, self.nodes))

    def _overlay(self) -> Path:
        """A kustomization over the example: this player's namespace, the replicas asked
        for, the image tags set, and the test knobs as env of the sts-agent containers."""
        overlay = self.workdir / "overlay"
        overlay.mkdir(parents=True, exist_ok=True)
        kustomization: JSON = {
            "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
            "resources": [os.path.relpath(self.example_dir, overlay)],
            "namespace": self.namespace,
            "replicas": [{"name": self.name, "count": self.replicas}],
        }
        if self.images:
            kustomization["images"] = [{"name": name, "newTag": tag}
                                       for name, tag in sorted(self.images.items())]
        patches: list[JSON] = []
        if self.json_patches:
            (overlay / "json-patches.yaml").write_text(yaml.safe_dump(self.json_patches))
            patches.append({"path": "json-patches.yaml",
                            "target": {"kind": "StatefulSet", "name": self.name}})
        if self.overrides:
            env = [{"name": k, "value": v} for k, v in self.overrides.items()]
            pod = self.example.pod_spec
            # Every container named, in its order: a strategic merge patch listing only
            # some puts those first (the sidecar before a native sidecar's init, when
            # the init runs another image: Galera's sts-agent-galera).
            patch = {"apiVersion": "apps/v1", "kind": "StatefulSet",
                     "metadata": {"name": self.name}, "spec": {"template": {"spec": {
                         key: [{"name": c["name"],
                                **({"env": env} if str(c["image"]).split(":")[0] == "sts-agent"
                                   else {})} for c in pod.get(key, [])]
                         for key in ("initContainers", "containers") if pod.get(key)}}}}
            (overlay / "overrides.yaml").write_text(yaml.safe_dump(patch))
            patches.append({"path": "overrides.yaml"})
        if patches:
            kustomization["patches"] = patches
        (overlay / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
        return overlay

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        """Closed; after an error, what the pods and the API server say first (stderr)."""
        try:
            if kind is not None:
                print(self.describe(), file=sys.stderr)
        finally:
            self.close()

    def close(self) -> None:
        """The StatefulSet goes first, its pods left (none made again while the rest
        goes), then the node with every container, then the namespace, and the control
        plane if it is the player's own."""
        try:
            try:
                self.delete_statefulset(cascade="orphan")
            except (OSError, RuntimeError):
                pass  # the control plane may have failed; it is stopped below
            with ThreadPoolExecutor(len(self.nodes)) as pool:
                list(pool.map(RealNode.stop, self.nodes))
            with contextlib.suppress(ApiError, httpx.HTTPError):
                self.control_plane.client().delete("v1", "namespaces", self.namespace)
        finally:
            self._http.close()
            if self.own_control_plane:
                self.control_plane.stop()

    # --- what the API says -------------------------------------------------------------------
    def api_pods(self) -> dict[int, JSON]:
        """This StatefulSet's pods in the API, by ordinal."""
        selector = ",".join(f"{k}={v}" for k, v in
                            self.example.spec["selector"]["matchLabels"].items())
        items = self.control_plane.client().list("v1", "pods", namespace=self.namespace,
                                                 labels=selector)["items"]
        return {int(p["metadata"]["name"].rsplit("-", 1)[1]): p for p in items}

    @staticmethod
    def api_ready(pod: JSON) -> bool:
        return realpods.api_ready(pod)

    @property
    def pods(self) -> dict[int, RealPod]:
        """This StatefulSet's pods as the API has them now, by ordinal (a terminating one
        until it is gone)."""
        return {o: RealPod(self._node_of(obj), obj) for o, obj in self.api_pods().items()}

    def _node_of(self, pod: JSON) -> RealNode:
        """The node ``pod`` is bound to (the first while it is not scheduled)."""
        bound = pod.get("spec", {}).get("nodeName")
        return next((node for node in self.nodes if node.name == bound), self.nodes[0])

    def event_reasons(self) -> list[str]:
        """Reasons of the Events the agent posted in this namespace, oldest first."""
        events = self.control_plane.client().list("v1", "events",
                                                  namespace=self.namespace)["items"]
        mine = [e for e in events if (e.get("source") or {}).get("component") == "sts-agent"
                or e.get("reportingComponent") == "sts-agent"]
        mine.sort(key=lambda e: int(e["metadata"]["resourceVersion"]))  # the order stored
        return [str(e["reason"]) for e in mine]

    def pre_stop_failures(self, uid: str, container: str) -> list[str]:
        """The kubelet's account of each failed preStop hook of ``container``
        in pod ``uid`` (its error: "... exited with <code>: <output>")."""
        return [line for node in self.nodes if node.kubelet_log.exists()
                for line in node.kubelet_log.read_text().splitlines()
                if '"PreStop hook failed"' in line and f'podUID="{uid}"' in line
                and f'containerName="{container}"' in line]

    # --- operations ----------------------------------------------------------------------
    def scale(self, replicas: int, *, timeout: float = 180.0) -> None:
        """`kubectl scale` (the scale subresource), then wait for the controller to get
        there: ``replicas`` pods Ready, none beyond."""
        self.replicas = replicas
        self.kubectl("scale", f"statefulset/{self.name}", f"--replicas={replicas}")
        self.wait_ready(timeout=timeout)

    def rolling_restart(self, *, timeout: float = 300.0) -> None:
        """`kubectl rollout restart`: the controller replaces every pod, highest ordinal
        first, each Ready before the next."""
        self.kubectl("rollout", "restart", f"statefulset/{self.name}")
        self.wait_rolled_out(timeout=timeout)

    def wait_rolled_out(self, *, timeout: float = 300.0) -> None:
        def done() -> bool:
            sts = self.control_plane.client().get("apps/v1", "statefulsets", self.name,
                                                  namespace=self.namespace)
            assert sts is not None
            status, spec = sts.get("status", {}), sts["spec"]
            return bool(status.get("observedGeneration", 0) >= sts["metadata"]["generation"]
                        and status.get("updateRevision") == status.get("currentRevision")
                        and status.get("updatedReplicas", 0) == spec["replicas"]
                        and status.get("readyReplicas", 0) == spec["replicas"])

        self._wait(done, f"the rollout of {self.name}", timeout)
        self.wait_ready(timeout=timeout)

    def kill(self, ordinal: int, *, lose_volume: bool = False) -> None:
        """The pod crashes (a crashed node): see _crash. The controller creates it anew,
        with its volume (emptied first with ``lose_volume``: its disk lost, the claim
        still bound)."""
        self._crash([self.pods[ordinal]], lose_volumes=(ordinal,) if lose_volume else ())

    def crash_container(self, ordinal: int, container: str, *, timeout: float = 60.0) -> None:
        """``container`` of pod ``ordinal`` dies at once (an OOM kill, a crash): every
        process of it SIGKILLed; the kubelet restarts it in the same pod (its address,
        volumes and the other containers unchanged). Returns once the kubelet has."""
        pod = self.pods[ordinal]
        before = pod.restarts(container)
        assert pod.kill_container(container) > 0, f"{pod.name} runs no {container}"
        self.wait_restarted(pod, container, before=before, timeout=timeout)

    def wait_restarted(self, pod: RealPod, container: str, *, before: int,
                       timeout: float = 60.0) -> None:
        """Until the kubelet has restarted ``container`` of ``pod`` in place (its restart
        count past ``before``; the pod the same, not replaced)."""
        def restarted() -> bool:
            now = self.api_pods().get(pod.ordinal)
            assert now is not None and now["metadata"]["uid"] == pod.uid, (
                f"{pod.name} was replaced, not its {container} restarted")
            return RealPod(pod.node, now).restarts(container) > before

        self._wait(restarted, f"the kubelet to restart {pod.name}'s {container}", timeout)

    def _crash(self, pods: list[RealPod], lose_volumes: tuple[int, ...] = (),
               timeout: float = 60.0) -> None:
        """Pods crashed at once: every process SIGKILLed (no preStop), the volumes of
        ``lose_volumes`` emptied, the pods force-deleted; until the kubelet has torn each
        sandbox down, whatever it restarted in it in between is killed too (the node
        crashed: nothing of the old pod runs beside its successor)."""
        for pod in pods:
            pod.kill()
        for ordinal in lose_volumes:
            self._empty_volumes(ordinal)
        client = self.control_plane.client()
        for pod in pods:
            if SHUT_DOWN in pod.obj["metadata"].get("finalizers", []):
                client.patch("v1", "pods", pod.name, [
                    {"op": "test", "path": "/metadata/uid", "value": pod.uid},
                    {"op": "remove", "path": "/metadata/finalizers"}],
                    namespace=self.namespace, kind="json")
            try:
                client.delete("v1", "pods", pod.name, namespace=self.namespace,
                              grace_seconds=0, uid=pod.uid)
            except ApiError as exc:
                # A pod shut down before was being deleted already: with the finalizer off
                # it goes by itself, and the controller may have made its successor before
                # this delete (409: the uid precondition names the old pod) or not (404).
                if exc.status not in (404, 409):
                    raise

        def torn_down() -> bool:
            killed = sum(pod.kill() for pod in pods)
            return killed == 0 and not any(pod.cgroups() for pod in pods)

        self._wait(torn_down, "the kubelet to tear the killed pods' sandboxes down", timeout)
        for pod in pods:
            self._wait_replaced(pod.ordinal, pod.uid)

    def shut_down(self, ordinal: int) -> None:
        """The pod's node shuts down cleanly and stays down: its containers are stopped
        as in a termination (preStop, SIGTERM, the grace period) and nothing replaces the
        pod until the next outage() deletes it. The kubelet terminates the pod while a
        finalizer of the player's keeps its object, and so its name: the controller makes
        no successor. Returns once every process of the pod is gone."""
        pod = self.pods[ordinal]
        client = self.control_plane.client()
        client.patch("v1", "pods", pod.name, {"metadata": {"finalizers": [SHUT_DOWN]}},
                     namespace=self.namespace)
        client.delete("v1", "pods", pod.name, namespace=self.namespace, uid=pod.uid)
        grace = float(pod.obj["spec"].get("terminationGracePeriodSeconds", 30))
        self._wait(lambda: not pod.pids(), f"{pod.name}'s containers stopped", grace + 60)

    def outage(self, *, lose_volumes: tuple[int, ...] = ()) -> None:
        """Every pod SIGKILLed at once (a power cut), the volumes of ``lose_volumes``
        emptied (their disks lost; the claims stay bound), then all force-deleted (with
        those shut down before): the controller recreates them together
        (podManagementPolicy: Parallel)."""
        self._crash(list(self.pods.values()), lose_volumes)

    def _empty_volumes(self, ordinal: int) -> None:
        for path in self.volume_paths(ordinal):
            for entry in path.iterdir():
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()

    def claim_names(self, ordinal: int) -> list[str]:
        """The PersistentVolumeClaims the controller makes for pod ``ordinal``."""
        return [f"{template['metadata']['name']}-{self.name}-{ordinal}"
                for template in self.example.spec.get("volumeClaimTemplates", [])]

    def volume_paths(self, ordinal: int) -> list[Path]:
        """The directories behind pod ``ordinal``'s PersistentVolumeClaims."""
        client = self.control_plane.client()
        paths = []
        for name in self.claim_names(ordinal):
            claim = client.get("v1", "persistentvolumeclaims", name, namespace=self.namespace)
            assert claim is not None, f"no claim {name}"
            volume = client.get("v1", "persistentvolumes", claim["spec"]["volumeName"])
            assert volume is not None
            source = volume["spec"].get("local") or volume["spec"].get("hostPath") or {}
            paths.append(Path(str(source["path"])))
        return paths

    def delete_pod(self, *ordinals: int) -> None:
        """`kubectl delete pod` of these pods at once: graceful termination (preStop,
        SIGTERM, the grace period), then the controller recreates each."""
        old = {ordinal: self.pods[ordinal] for ordinal in ordinals}
        self.kubectl("delete", "pod", *(pod.name for pod in old.values()), "--wait=false")
        for ordinal, pod in old.items():
            self._wait_replaced(ordinal, pod.uid)

    def _wait_replaced(self, ordinal: int, uid: str, timeout: float = 180.0) -> None:
        def replaced() -> bool:
            pod = self.api_pods().get(ordinal)
            return pod is not None and pod["metadata"]["uid"] != uid
        self._wait(replaced, f"pod {ordinal} recreated", timeout)

    def apply(self) -> None:
        """`kubectl apply -k` of the overlay again (after ``json_patches`` changed, or to
        re-create what was deleted)."""
        self.kubectl("apply", "-k", str(self._overlay()))

    def patch(self, body: JSON) -> None:
        """`kubectl patch statefulset` with a merge patch."""
        self.kubectl("patch", f"statefulset/{self.name}", "--type=merge", "-p",
                     json.dumps(body))

    def delete_statefulset(self, *, cascade: str = "background") -> None:
        """`kubectl delete statefulset --cascade=<cascade>` (orphan: the pods stay)."""
        self.kubectl("delete", f"statefulset/{self.name}", f"--cascade={cascade}",
                     "--wait=false")

    def evict(self, ordinal: int) -> tuple[int, str]:
        """The Eviction API, as `kubectl drain` uses it: (HTTP status, message); 429 when
        a PodDisruptionBudget forbids it now."""
        name = f"{self.name}-{ordinal}"
        body = {"apiVersion": "policy/v1", "kind": "Eviction",
                "metadata": {"name": name, "namespace": self.namespace}}
        try:
            self.control_plane.client().create("v1", "pods", body, namespace=self.namespace,
                                               name=name, subresource="eviction")
        except ApiError as exc:
            return exc.status, exc.message
        return 201, "evicted"

    def node_of(self, ordinal: int) -> RealNode:
        """The node pod ``ordinal`` is bound to."""
        return self._node_of(self.api_pods()[ordinal])

    def drain(self, node: RealNode, *, timeout: float = 300.0) -> list[int]:
        """`kubectl drain` of ``node`` (its maintenance): cordoned, each of its pods
        evicted through the Eviction API as its PodDisruptionBudget allows and terminated
        gracefully; returns once they are gone, with the ordinals they had. Their
        successors wait Pending until uncordon(): their local volumes are on ``node``."""
        ordinals = sorted(self._pods_on(node))
        self.control_plane.kubectl("drain", node.name, "--ignore-daemonsets",
                                   "--delete-emptydir-data", f"--timeout={timeout:.0f}s",
                                   timeout=timeout + 30)
        return ordinals

    def _pods_on(self, node: RealNode) -> dict[int, JSON]:
        """This StatefulSet's pods bound to ``node``, by ordinal."""
        return {o: p for o, p in self.api_pods().items()
                if p["spec"].get("nodeName") == node.name}

    def uncordon(self, node: RealNode) -> None:
        """`kubectl uncordon`: ``node`` takes pods again."""
        self.control_plane.kubectl("uncordon", node.name)

    def lose_node(self, node: RealNode, *, timeout: float = 180.0) -> list[int]:
        """``node`` is lost for good with its disks (RealNode.lose: every process killed,
        nothing said to the API), then what the cluster's operator does, as Kubernetes
        documents it for a node that will not come back: once the control plane marks the
        node NotReady, the out-of-service taint (non-graceful node shutdown) has its pods
        deleted and force-removed, and the claims of its local volumes are deleted with
        their volumes (the disks are gone), so the StatefulSet controller makes each pod a
        new claim, bound on a node that runs. Returns the ordinals ``node`` held, once
        each has a successor."""
        pods = {o: p["metadata"]["uid"] for o, p in self._pods_on(node).items()}
        node.lose()
        self.lost.append(node)
        client = self.control_plane.client()

        def not_ready() -> bool:
            found = client.get("v1", "nodes", node.name)
            assert found is not None, f"Node {node.name} is gone"
            return any(c["type"] == "Ready" and c["status"] != "True"
                       for c in found.get("status", {}).get("conditions") or [])

        self._wait(not_ready, f"the control plane to mark {node.name} NotReady", timeout)
        self.control_plane.kubectl("taint", "nodes", node.name,
                                   "node.kubernetes.io/out-of-service=nodeshutdown:NoExecute")
        for ordinal, uid in pods.items():
            self._wait_replaced(ordinal, uid, timeout)
        for name in [name for ordinal in pods for name in self.claim_names(ordinal)]:
            claim = client.get("v1", "persistentvolumeclaims", name, namespace=self.namespace)
            if claim is None:
                continue
            client.delete("v1", "persistentvolumeclaims", name, namespace=self.namespace,
                          uid=claim["metadata"]["uid"])
            if claim["spec"].get("volumeName"):
                client.delete("v1", "persistentvolumes", claim["spec"]["volumeName"])
        return sorted(pods)

    def statefulset(self) -> JSON:
        """The StatefulSet object as the API has it now."""
        found = self.control_plane.client().get("apps/v1", "statefulsets", self.name,
                                                namespace=self.namespace)
        if found is None:
            raise AssertionError(f"StatefulSet {self.name} does not exist")
        return found

    def revisions(self) -> dict[int, str]:
        """Each pod's controller revision (the template it runs), by ordinal."""
        return {o: str(p["metadata"].get("labels", {}).get("controller-revision-hash"))
                for o, p in self.api_pods().items()}

    def partition(self, ordinal: int) -> None:
        """A network partition: pod ``ordinal`` and the other pods no longer reach each
        other; the host (probes, DNS, the API) still reaches all of them."""
        realpods.partition(list(self.pods.values()), self.pods[ordinal])

    def heal(self) -> None:
        realpods.heal(list(self.pods.values()))

    def stop_dns(self) -> None:
        """The cluster DNS (every node's CoreDNS) gone until start_dns()."""
        for node in self._running_nodes():
            node.stop_dns()

    def start_dns(self) -> None:
        for node in self._running_nodes():
            node.start_dns()

    # --- observation -------------------------------------------------------------------------
    def _wait(self, check: Any, what: str, timeout: float) -> None:
        def guarded() -> bool:
            self._fail_fast()
            return bool(check())
        try:
            wait_until(guarded, what=what, timeout=timeout, interval=API_POLL_SECONDS)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.describe()}") from None

    def _fail_fast(self) -> None:
        dead = self.control_plane.alive()
        if dead:
            raise GiveUp(f"control plane components exited: {dead}")
        dead = [f"{node.name}: {name}" for node in self._running_nodes()
                for name in node.exited()]
        if dead:
            raise GiveUp(f"node components exited: {dead}")

    def wait_ready(self, *ordinals: int, timeout: float = 180.0) -> None:
        """The API shows these pods (default: all the StatefulSet keeps, and no others)
        Ready."""
        found = self.control_plane.client().get("apps/v1", "statefulsets", self.name,
                                                namespace=self.namespace) or {}
        start = int(((found.get("spec") or {}).get("ordinals") or {}).get("start", 0))
        wanted = ordinals or tuple(range(start, start + self.replicas))

        def ready() -> bool:
            pods = self.api_pods()
            if not ordinals and set(pods) != set(wanted):
                return False
            return all(o in pods and self.api_ready(pods[o]) for o in wanted)

        self._wait(ready, f"pods {list(wanted)} Ready", timeout)

    def status(self, ordinal: int) -> dict[str, Any]:
        """The sidecar's /status of one pod (port 9090 on the pod's address)."""
        return self._status_at(self.pods[ordinal].ip)

    def _status_at(self, ip: str) -> dict[str, Any]:
        answer = self._http.get(f"http://{ip}:9090/status").json()
        assert isinstance(answer, dict)
        return answer

    def members(self) -> list[dict[str, Any]]:
        """The membership as a ready pod's sidecar reports it (the leader's own view)."""
        for pod in self.pods.values():
            if pod.ready and not pod.terminating:
                view = self._status_at(pod.ip)["view"]["authority"]
                return list(view["members"])
        raise AssertionError("no ready pod to ask for members")

    def describe(self) -> str:
        """Pods, phases, Events, the node's notes and the tail of each container's log:
        for failures."""
        lines = []
        try:
            lines.append(self.kubectl("get", "pods,pvc,statefulset", "-o", "wide",
                                      check=False))
            lines.append(self.kubectl("get", "events", "--sort-by=.lastTimestamp",
                                      check=False))
        except (OSError, RuntimeError) as exc:
            lines.append(f"kubectl get failed: {exc}")
        for node in self.nodes:
            lines.extend(f"   node {node.name}: {event}" for event in node.events[-8:])
        for _, pod in sorted(self.pods.items()):
            lines.append(f"== {pod.name} {pod.ip} {pod.phase} ready={pod.ready}")
            spec = pod.obj["spec"]
            for container in [*spec.get("initContainers", []), *spec["containers"]]:
                tail = pod.log(container["name"]).splitlines()[-12:]
                lines.append(f"   --- {container['name']}")
                lines.extend(f"   {line[:300]}" for line in tail)
        return "\n".join(lines)

    def dump(self) -> str:
        """Objects of the namespace as JSON (debugging)."""
        return json.dumps(self.api_pods(), indent=1)[:20000]
