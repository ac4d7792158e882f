"""One pod played as a kubelet would, from its object in the API: volumes (configMap,
secret, projected token, emptyDir, PVC), init containers, containers, probes, restarts on
liveness failure, status, and termination (preStop, SIGTERM, grace period, SIGKILL)."""

from __future__ import annotations

import base64
import datetime
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import httpx

from player import cgroups, images
from player.apiclient import JSON, ApiError

if TYPE_CHECKING:
    from player.apiclient import ApiClient
    from player.controlplane import ControlPlane
    from player.netns import Network

LAUNCH = Path(__file__).with_name("launch.py")
VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
DOMAIN = "cluster.local"
# How long a node's reads for a pod just bound to it may wait for the node authorizer.
NODE_GRAPH_SECONDS = 60.0
T = TypeVar("T")


class Node(Protocol):
    """What a pod needs of the node that plays it (player.node.Node)."""

    api: ApiClient
    network: Network
    workdir: Path
    control_plane: ControlPlane

    def report(self, pod: Pod) -> None:
        """Send the pod's status to the API."""
        ...


def stamp() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: defined names replaced, $$ escapes, others kept."""
    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return VAR.sub(one, text)


@dataclass
class Probe:
    """A probe's settings with the API's defaults, and its running state."""

    spec: dict[str, Any]
    successes: int = 0
    failures: int = 0
    next_at: float = 0.0

    @property
    def period(self) -> float:
        return float(self.spec.get("periodSeconds", 10))

    @property
    def timeout(self) -> float:
        return float(self.spec.get("timeoutSeconds", 1))

    @property
    def failure_threshold(self) -> int:
        return int(self.spec.get("failureThreshold", 3))

    @property
    def success_threshold(self) -> int:
        return int(self.spec.get("successThreshold", 1))


@dataclass
class Container:
    """One running container of a pod."""

    spec: dict[str, Any]
    sidecar: bool = False  # a native sidecar: an init container with restartPolicy Always
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    ready: bool = False
    readiness: Probe | None = None
    liveness: Probe | None = None
    exits: list[int] = field(default_factory=list)
    started_at: str = ""

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Pod:
    """One pod bound to the node: its own network namespace, volumes and containers."""

    def __init__(self, node: Node, obj: JSON) -> None:
        self.node = node
        meta = obj["metadata"]
        self.obj = obj
        self.name = str(meta["name"])
        self.namespace = str(meta["namespace"])
        self.uid = str(meta["uid"])
        self.spec: JSON = obj["spec"]
        self.dir = node.workdir / "pods" / f"{self.name}-{self.uid[:8]}"
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        hostname = str(self.spec.get("hostname") or self.name)
        self.netns, self.ip = node.network.add_pod(
            f"{self.name}-{self.uid[:5]}", search=self.search_domains(), hostname=hostname)
        self.containers: dict[str, Container] = {}
        self.init_done: list[str] = []
        self.phase = "Pending"  # Pending, Running, Terminating, Gone
        self.ready = False
        self.ready_since = stamp()
        self.started_at = stamp()
        self.terminating = False
        self.events: list[str] = []
        self._init: Container | None = None  # the init container running now
        self._http = httpx.Client(timeout=1.0, trust_env=False)
        self._volumes: dict[str, Path] = {}
        self._cgroups: dict[str, cgroups.Cgroup | None] = {}  # by container, kept on restart
        self._cgroup_hierarchy: cgroups.Hierarchy | None = None
        self._cgroup_lock = threading.Lock()  # preStop hooks launch from their own threads
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    def search_domains(self) -> list[str]:
        return [f"{self.namespace}.svc.{DOMAIN}", f"svc.{DOMAIN}", DOMAIN]

    @property
    def ordinal(self) -> int:
        """The StatefulSet ordinal in the pod's name."""
        return int(self.name.rsplit("-", 1)[1])

    # --- volumes and environment ---------------------------------------------------------
    def _as_node(self, call: Callable[[], T], what: str) -> T:
        """``call`` with the node's rights. The API server's node authorizer learns what
        a pod refers to from its informers, a moment after the pod is bound here: until
        then it refuses the node ("no relationship found"), and the kubelet's volume
        manager tries the mount again, as here, for up to NODE_GRAPH_SECONDS."""
        deadline = time.monotonic() + NODE_GRAPH_SECONDS
        refused = 0
        while True:
            try:
                found = call()
            except ApiError as exc:
                if exc.status != 403 or "no relationship found" not in exc.message \
                        or self.terminating or time.monotonic() >= deadline:
                    raise
                refused += 1
                time.sleep(0.2)  # the volume manager's retry
                continue
            if refused:
                self._note(f"{what}: refused {refused} times until the node authorizer "
                           "saw the pod")
            return found

    def _object(self, resource: str, name: str) -> JSON:
        """A ConfigMap, Secret, PVC or PV the pod refers to, read with the node's rights."""
        namespace = None if resource == "persistentvolumes" else self.namespace
        found = self._as_node(lambda: self.node.api.get("v1", resource, name,
                                                        namespace=namespace),
                              f"{resource[:-1]} {name}")
        if found is None:
            raise images.ImageError(f"{resource[:-1]} {name} not found")
        return found

    def _data(self, resource: str, name: str) -> dict[str, bytes]:
        obj = self._object(resource, name)
        data = {k: str(v).encode() for k, v in (obj.get("data") or {}).items()}
        if resource == "secrets":
            data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
            data.update({k: str(v).encode() for k, v in (obj.get("stringData") or {}).items()})
        return data

    def volume(self, name: str) -> Path:
        """Where the pod's volume ``name`` is on this host (an emptyDir, a claim's path)."""
        return self._volumes[name]

    def _make_volumes(self) -> dict[str, Path]:
        volumes: dict[str, Path] = {}
        for volume in self.spec.get("volumes", []):
            name = volume["name"]
            path = self.dir / "volumes" / name
            path.mkdir(parents=True)
            if "configMap" in volume:
                self._write(path, self._data("configmaps", volume["configMap"]["name"]),
                            volume["configMap"])
            elif "secret" in volume:
                self._write(path, self._data("secrets", volume["secret"]["secretName"]),
                            volume["secret"])
            elif "projected" in volume:
                self._project(volume["projected"], path)
            elif "persistentVolumeClaim" in volume:
                claim = self._object("persistentvolumeclaims",
                                     volume["persistentVolumeClaim"]["claimName"])
                bound = self._object("persistentvolumes", claim["spec"]["volumeName"])
                source = bound["spec"].get("local") or bound["spec"].get("hostPath") or {}
                path.rmdir()
                path = Path(str(source["path"]))  # the PV's own directory, kept across pods
            elif "emptyDir" not in volume:
                raise images.ImageError(f"volume {name}: only configMap, secret, projected, "
                                        "persistentVolumeClaim and emptyDir are played")
            volumes[name] = path
        return volumes

    @staticmethod
    def _write(path: Path, data: dict[str, bytes], source: JSON) -> None:
        mode = int(source.get("defaultMode", 0o644))
        items = source.get("items") or [{"key": k, "path": k} for k in data]
        for item in items:
            target = path / item["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data[item["key"]])
            target.chmod(int(item.get("mode", mode)))

    def _project(self, projected: JSON, path: Path) -> None:
        """A projected volume: a bound service-account token from the TokenRequest API,
        ConfigMaps (the cluster's CA in kube-root-ca.crt), the Downward API."""
        for source in projected.get("sources", []):
            if "serviceAccountToken" in source:
                token = self._token(source["serviceAccountToken"])
                (path / source["serviceAccountToken"]["path"]).write_text(token)
            elif "configMap" in source:
                self._write(path, self._data("configmaps", source["configMap"]["name"]),
                            source["configMap"])
            elif "secret" in source:
                self._write(path, self._data("secrets", source["secret"]["name"]),
                            source["secret"])
            elif "downwardAPI" in source:
                for item in source["downwardAPI"]["items"]:
                    field_path = item["fieldRef"]["fieldPath"]
                    (path / item["path"]).write_text(self._fields()[field_path])
            else:
                raise images.ImageError(f"projected source {sorted(source)} not played")

    def _token(self, source: JSON) -> str:
        """A token bound to this pod, as the kubelet asks the TokenRequest API for one."""
        account = str(self.spec.get("serviceAccountName") or "default")
        spec: JSON = {"boundObjectRef": {"apiVersion": "v1", "kind": "Pod",
                                         "name": self.name, "uid": self.uid},
                      "expirationSeconds": int(source.get("expirationSeconds", 3607))}
        if source.get("audience"):
            spec["audiences"] = [source["audience"]]
        answer = self._as_node(lambda: self.node.api.create(
            "v1", "serviceaccounts", {"apiVersion": "authentication.k8s.io/v1",
                                      "kind": "TokenRequest", "spec": spec},
            namespace=self.namespace, name=account, subresource="token"),
            f"token for {account}")
        return str(answer["status"]["token"])

    def _fields(self) -> dict[str, str]:
        """What the Downward API's fieldRefs resolve to for this pod."""
        meta = self.obj["metadata"]
        return {"metadata.name": self.name, "metadata.namespace": self.namespace,
                "metadata.uid": self.uid, "status.podIP": self.ip,
                "status.hostIP": self.node.network.gateway,
                "spec.nodeName": str(self.spec.get("nodeName", "")),
                "spec.serviceAccountName": str(self.spec.get("serviceAccountName", "default")),
                **{f"metadata.labels['{k}']": str(v)
                   for k, v in (meta.get("labels") or {}).items()}}

    def _env(self, spec: JSON) -> dict[str, str]:
        control_plane = self.node.control_plane
        programs = images.bin_dir(spec["image"], self.dir / "bin" / str(spec["name"]))
        env = {
            "PATH": f"{programs}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOSTNAME": str(self.spec.get("hostname") or self.name),
            "HOME": "/root",
            # The kubernetes Service, as every pod sees it.
            "KUBERNETES_SERVICE_HOST": control_plane.address,
            "KUBERNETES_SERVICE_PORT": "443",
        }
        fields = self._fields()
        for item in spec.get("env", []):
            source = item.get("valueFrom", {})
            if "valueFrom" not in item:
                env[item["name"]] = expand(str(item.get("value", "")), env)
            elif "fieldRef" in source:
                env[item["name"]] = fields[source["fieldRef"]["fieldPath"]]
            elif "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                env[item["name"]] = self._data("secrets", ref["name"])[ref["key"]].decode()
            elif "configMapKeyRef" in source:
                ref = source["configMapKeyRef"]
                env[item["name"]] = self._data("configmaps", ref["name"])[ref["key"]].decode()
            else:
                raise images.ImageError(f"env {item['name']}: source not played")
        return env

    def _cgroup(self, spec: JSON) -> cgroups.Cgroup | None:
        """The container's cgroup with its limits, made at its first launch and reused by
        its restarts and exec hooks; None for a container without limits (or, outside CI,
        on a machine without a usable hierarchy: cgroups.system says so)."""
        name = str(spec["name"])
        with self._cgroup_lock:
            if name not in self._cgroups:
                limits = cgroups.Limits.of(spec)
                hierarchy = None if limits.empty else cgroups.system()
                if hierarchy is None:
                    self._cgroups[name] = None
                    if not limits.empty:
                        self._note(f"{name} limits not applied: {limits.describe()}")
                else:
                    self._cgroup_hierarchy = hierarchy
                    self._cgroups[name] = hierarchy.create(self.dir.name, name, limits)
                    self._note(f"{name} cgroup {limits.describe()}")
            return self._cgroups[name]

    def launch(self, spec: JSON, argv: list[str], log: Path) -> subprocess.Popen[bytes]:
        """Start ``argv`` as (or, for an exec hook, inside) container ``spec``: in the pod's
        network namespace and the container's cgroup, with its volumes and environment."""
        env = self._env(spec)
        mounts = [{"source": str(self._volumes[m["name"]]), "target": m["mountPath"],
                   "read_only": bool(m.get("readOnly"))} for m in spec.get("volumeMounts", [])]
        expanded = [expand(word, env) for word in argv]
        cgroup = self._cgroup(spec)
        fds = cgroup.open_procs() if cgroup is not None else []
        try:
            launch = self.dir / f"{spec['name']}.{time.monotonic_ns()}.json"
            launch.write_text(json.dumps({
                "argv": expanded, "env": env, "mounts": mounts,
                "working_dir": spec.get("workingDir"), "cgroup_fds": fds,
                "cgroups": [str(d) for d in cgroup.dirs] if cgroup is not None else []}))
            with log.open("ab") as out:
                return subprocess.Popen(["ip", "netns", "exec", self.netns, sys.executable,
                                         str(LAUNCH), str(launch)], stdout=out,
                                        stderr=subprocess.STDOUT, start_new_session=True,
                                        pass_fds=fds)
        finally:
            for fd in fds:
                os.close(fd)

    def _argv(self, spec: JSON) -> list[str]:
        return images.argv(spec["image"], spec.get("command"), spec.get("args"))

    # --- status ------------------------------------------------------------------------------
    def status(self) -> JSON:
        """The pod's status as the kubelet reports it."""
        ready = self.ready and not self.terminating
        initialized = self.phase != "Pending" or not self.spec.get("initContainers")

        def condition(kind: str, ok: bool, since: str | None = None) -> JSON:
            return {"type": kind, "status": "True" if ok else "False",
                    "lastTransitionTime": since or self.started_at}

        def container(c: Container) -> JSON:
            state: JSON = ({"running": {"startedAt": c.started_at}} if c.running
                           else {"waiting": {"reason": "ContainerCreating"}})
            return {"name": c.name, "image": str(c.spec["image"]), "imageID": "",
                    "ready": c.ready, "restartCount": c.restarts, "started": c.running,
                    "state": state}

        mains = [self.containers[c["name"]] for c in self.spec["containers"]
                 if c["name"] in self.containers]
        inits = [self.containers[c["name"]] for c in self.spec.get("initContainers", [])
                 if c["name"] in self.containers]
        status: JSON = {
            "phase": "Running" if self.phase in ("Running", "Terminating") else "Pending",
            "hostIP": self.node.network.gateway,
            "hostIPs": [{"ip": self.node.network.gateway}],
            "podIP": self.ip, "podIPs": [{"ip": self.ip}],
            "startTime": self.started_at,
            "conditions": [condition("PodScheduled", True), condition("Initialized",
                                                                     initialized),
                           condition("ContainersReady", ready, self.ready_since),
                           condition("Ready", ready, self.ready_since)],
            "containerStatuses": [container(c) for c in mains],
        }
        if inits or self.init_done:
            status["initContainerStatuses"] = (
                [{"name": n, "image": "", "imageID": "", "ready": True, "restartCount": 0,
                  "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
                 for n in self.init_done] + [container(c) for c in inits])
        return status

    def _changed(self) -> None:
        self.node.report(self)

    def log_path(self, container: str) -> Path:
        return self.dir / f"{container}.log"

    def log(self, container: str) -> str:
        """What ``container`` wrote over all its runs."""
        path = self.log_path(container)
        return path.read_text(errors="replace") if path.exists() else ""

    # --- life ------------------------------------------------------------------------------
    def start(self) -> Pod:
        self._thread.start()
        return self

    def _note(self, event: str) -> None:
        self.events.append(f"{time.strftime('%H:%M:%S')} {event}")

    def _start_container(self, container: Container) -> None:
        container.proc = self.launch(container.spec, self._argv(container.spec),
                                      self.log_path(container.name))
        container.started_at = stamp()
        container.ready = False
        if "readinessProbe" in container.spec:
            container.readiness = Probe(container.spec["readinessProbe"])
            container.readiness.next_at = time.monotonic() + float(
                container.spec["readinessProbe"].get("initialDelaySeconds", 0))
        if "livenessProbe" in container.spec:
            container.liveness = Probe(container.spec["livenessProbe"])
            container.liveness.next_at = time.monotonic() + float(
                container.spec["livenessProbe"].get("initialDelaySeconds", 0))

    def _run(self) -> None:
        try:
            self._volumes = self._make_volumes()
            self._changed()  # the pod has an address
            for spec in self.spec.get("initContainers", []):
                if self.terminating:
                    return
                if spec.get("restartPolicy") == "Always":
                    container = Container(spec, sidecar=True)
                    self.containers[container.name] = container
                    self._start_container(container)
                    continue
                self._run_init(spec)
            for spec in self.spec["containers"]:
                if self.terminating:
                    return
                container = Container(spec)
                self.containers[container.name] = container
                self._start_container(container)
            self.phase = "Running"
            self._note("started")
            self._changed()
            while not self.terminating:
                self._tick()
                time.sleep(0.05)  # the kubelet loop's tick; probes keep their own periods
        except Exception as exc:  # a pod that cannot start says why and stays Pending
            self._note(f"failed: {type(exc).__name__}: {exc}")
            (self.dir / "failure.txt").write_text(f"{type(exc).__name__}: {exc}\n")

    def _run_init(self, spec: dict[str, Any]) -> None:
        """Run an init container to success; on failure retry with the kubelet's backoff."""
        backoff = 1.0
        while not self.terminating:
            container = Container(spec)
            self._init = container
            self.containers[container.name] = container
            self._start_container(container)
            assert container.proc is not None
            code = container.proc.wait()
            self._init = None
            container.exits.append(code)
            if code == 0:
                del self.containers[container.name]
                self.init_done.append(container.name)
                self._note(f"init {container.name} done")
                return
            self._note(f"init {container.name} exited {code}; retrying in {backoff:.0f}s")
            deadline = time.monotonic() + backoff
            while time.monotonic() < deadline and not self.terminating:
                time.sleep(0.1)  # back-off between init attempts (interruptible)
            backoff = min(backoff * 2, 10.0)

    def _probe(self, container: Container, probe: Probe) -> bool:
        if "tcpSocket" in probe.spec:
            port = self._port(container, probe.spec["tcpSocket"]["port"])
            try:
                socket.create_connection((self.ip, port), timeout=probe.timeout).close()
                return True
            except OSError:
                return False
        action = probe.spec.get("httpGet")
        if action is None:
            raise images.ImageError(f"{container.name}: only httpGet and tcpSocket probes "
                                    "are played")
        port = self._port(container, action["port"])
        try:
            response = self._http.get(f"http://{self.ip}:{port}{action.get('path', '/')}",
                                      timeout=probe.timeout)
            return 200 <= response.status_code < 400
        except httpx.HTTPError:
            return False

    def _port(self, container: Container, port: int | str) -> int:
        if isinstance(port, int) or str(port).isdigit():
            return int(port)
        for declared in container.spec.get("ports", []):  # the container's own, as k8s does
            if declared.get("name") == port:
                return int(declared["containerPort"])
        raise images.ImageError(f"{container.name}: no port named {port!r}")

    def _tick(self) -> None:
        now = time.monotonic()
        for container in list(self.containers.values()):
            if self.terminating:
                return
            if not container.running:
                assert container.proc is not None
                code = container.proc.poll()
                container.exits.append(-1 if code is None else code)
                container.restarts += 1
                self._note(f"{container.name} exited {code}; restarting")
                self._start_container(container)
                continue
            probe = container.liveness
            if probe is not None and now >= probe.next_at:
                probe.next_at = now + probe.period
                if self._probe(container, probe):
                    probe.failures = 0
                else:
                    probe.failures += 1
                    if probe.failures >= probe.failure_threshold:
                        self._note(f"{container.name} liveness failed; restarting")
                        self._stop_container(container, time.monotonic() + self.grace)
                        container.restarts += 1
                        self._start_container(container)
                        continue
            probe = container.readiness
            if probe is not None and now >= probe.next_at:
                probe.next_at = now + probe.period
                if self._probe(container, probe):
                    probe.failures = 0
                    probe.successes += 1
                    if probe.successes >= probe.success_threshold:
                        container.ready = True
                else:
                    probe.successes = 0
                    probe.failures += 1
                    if probe.failures >= probe.failure_threshold:
                        container.ready = False
            elif probe is None:
                container.ready = True
        ready = all(c.ready for c in self.containers.values()) and bool(self.containers)
        if ready != self.ready and not self.terminating:
            self.ready = ready
            self.ready_since = stamp()
            self._note("Ready" if ready else "NotReady")
            self._changed()

    # --- termination -------------------------------------------------------------------------
    def _pre_stop(self, container: Container, deadline: float) -> None:
        hook = container.spec.get("lifecycle", {}).get("preStop")
        if not hook:
            return
        remaining = max(0.0, deadline - time.monotonic())
        if "exec" in hook:
            argv = images.argv(container.spec["image"], hook["exec"]["command"], None)
            proc = self.launch(container.spec, argv, self.dir / f"{container.name}.prestop.log")
            try:
                code = proc.wait(timeout=remaining)
                self._note(f"{container.name} preStop exited {code}")
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                self._note(f"{container.name} preStop killed at the grace deadline")
        elif "httpGet" in hook:
            action = hook["httpGet"]
            port = self._port(container, action["port"])
            try:
                answer = self._http.get(f"http://{self.ip}:{port}{action.get('path', '/')}",
                                        timeout=remaining)
                self._note(f"{container.name} preStop httpGet {answer.status_code} "
                           f"{answer.text[:300]}")
            except httpx.HTTPError as exc:
                self._note(f"{container.name} preStop httpGet failed: {exc}")
        elif "sleep" in hook:
            end = time.monotonic() + min(remaining, float(hook["sleep"]["seconds"]))
            while time.monotonic() < end:
                time.sleep(0.05)  # the sleep action itself
        else:
            raise images.ImageError(f"{container.name}: preStop {sorted(hook)} not played")

    def _stop_container(self, container: Container, deadline: float,
                        *, pre_stop: bool = True) -> None:
        if pre_stop:
            self._pre_stop(container, deadline)
        if container.proc is None or not container.running:
            return
        os.killpg(container.proc.pid, signal.SIGTERM)
        try:
            container.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self._note(f"{container.name} SIGKILL at the grace deadline")
            os.killpg(container.proc.pid, signal.SIGKILL)
            container.proc.wait()

    def delete(self, *, grace: float | None = None) -> None:
        """Terminate as the kubelet does, then drop the pod (its PVC stays)."""
        grace = self.grace if grace is None else grace
        deadline = time.monotonic() + grace
        self.terminating = True
        self.phase = "Terminating"
        self.ready = False
        self.ready_since = stamp()
        self._note("Terminating")
        self._changed()
        running_init = self._init
        if running_init is not None and running_init.proc is not None and running_init.running:
            os.killpg(running_init.proc.pid, signal.SIGTERM)
        self._thread.join(timeout=30)
        if running_init is not None:
            self.containers.pop(running_init.name, None)
        mains = [c for c in self.containers.values() if not c.sidecar]
        threads = [threading.Thread(target=self._stop_container, args=(c, deadline))
                   for c in mains]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # Native sidecars stop after the main containers, in reverse order.
        for container in reversed([c for c in self.containers.values() if c.sidecar]):
            self._stop_container(container, max(deadline, time.monotonic() + 2))
        self._gone()

    def kill(self) -> None:
        """SIGKILL every container, no hook: a node crash, an OOM kill of the whole pod."""
        self.terminating = True
        self.ready = False
        self._note("Killed")
        running_init = self._init
        if running_init is not None and running_init.proc is not None and running_init.running:
            os.killpg(running_init.proc.pid, signal.SIGKILL)
        self._thread.join(timeout=30)
        for container in self.containers.values():
            if container.proc is not None and container.running:
                os.killpg(container.proc.pid, signal.SIGKILL)
                container.proc.wait()
        self._gone()

    def _gone(self) -> None:
        self.phase = "Gone"
        self._http.close()
        self.node.network.remove_pod(self.netns)
        if self._cgroup_hierarchy is not None:
            try:
                self._cgroup_hierarchy.remove(self.dir.name)
            except cgroups.CgroupError as exc:
                self._note(f"cgroups not removed: {exc}")

    @property
    def grace(self) -> float:
        """terminationGracePeriodSeconds (the API's default is 30)."""
        return float(self.spec.get("terminationGracePeriodSeconds", 30))
