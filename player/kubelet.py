"""One pod played as a kubelet would: volumes, init containers, containers, probes,
restarts on liveness failure, and termination (preStop, SIGTERM, grace period, SIGKILL)."""

from __future__ import annotations

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from player import images

if TYPE_CHECKING:
    from player.kubeapi import KubeApi
    from player.manifests import Example
    from player.netns import Network

LAUNCH = Path(__file__).with_name("launch.py")
SA_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class Node(Protocol):
    """What a pod needs of the node that plays it (the player's controller)."""

    workdir: Path
    namespace: str
    example: Example
    network: Network
    kube: KubeApi

    def search_domains(self) -> list[str]:
        """The pod's resolv.conf search list."""
        ...

    def pod_changed(self) -> None:
        """A pod's phase, address or readiness changed: DNS and the API follow."""
        ...


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

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Pod:
    """Pod ``<sts>-<ordinal>``: its own network namespace, volumes and containers."""

    def __init__(self, player: Node, ordinal: int) -> None:
        self.player = player
        self.ordinal = ordinal
        self.name = f"{player.example.name}-{ordinal}"
        self.dir = player.workdir / "pods" / self.name
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        self.netns, self.ip = player.network.add_pod(
            self.name, search=player.search_domains(), hostname=self.name)
        self.containers: dict[str, Container] = {}
        self.phase = "Pending"  # Pending, Running, Terminating, Gone
        self.ready = False
        self.terminating = False
        self.events: list[str] = []
        self._init: Container | None = None  # the init container running now
        self._volumes = self._make_volumes()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._http = httpx.Client(timeout=1.0, trust_env=False)

    # --- volumes and environment ---------------------------------------------------------
    def _make_volumes(self) -> dict[str, Path]:
        example = self.player.example
        volumes: dict[str, Path] = {}
        for volume in example.pod_spec.get("volumes", []):
            name = volume["name"]
            path = self.dir / "volumes" / name
            path.mkdir(parents=True)
            if "configMap" in volume:
                data = example.config_maps[volume["configMap"]["name"]]
                for key, value in data.items():
                    (path / key).write_text(value)
            elif "secret" in volume:
                data_bytes = example.secrets[volume["secret"]["secretName"]]
                for key, raw in data_bytes.items():
                    (path / key).write_bytes(raw)
                    (path / key).chmod(int(volume["secret"].get("defaultMode", 0o644)))
            elif "projected" in volume:
                self._project(volume["projected"], path)
            elif "emptyDir" not in volume:
                raise images.ImageError(f"volume {name}: only configMap, secret and emptyDir "
                                        "are played")
            volumes[name] = path
        for claim in example.spec.get("volumeClaimTemplates", []):
            name = claim["metadata"]["name"]
            # A PVC outlives its pod: same name, same directory, after any restart.
            volumes[name] = self.player.workdir / "pvc" / f"{name}-{self.name}"
            volumes[name].mkdir(parents=True, exist_ok=True)
        if not example.pod_spec.get("automountServiceAccountToken", True):
            return volumes
        sa = self.dir / "serviceaccount"
        sa.mkdir()
        api = self.player.kube
        shutil.copy(api.token_file, sa / "token")
        assert api.ca_file is not None, "the stand-in API serves TLS for in-cluster clients"
        shutil.copy(api.ca_file, sa / "ca.crt")
        (sa / "namespace").write_text(self.player.namespace)
        volumes["kube-api-access"] = sa
        return volumes

    def _project(self, projected: dict[str, Any], path: Path) -> None:
        """A projected volume of a service-account token, the API's CA and the namespace:
        what the kubelet writes for a token mounted by hand."""
        api = self.player.kube
        for source in projected.get("sources", []):
            if "serviceAccountToken" in source:
                shutil.copy(api.token_file, path / source["serviceAccountToken"]["path"])
            elif "configMap" in source and source["configMap"]["name"] == "kube-root-ca.crt":
                assert api.ca_file is not None
                for item in source["configMap"].get("items", [{"key": "ca.crt",
                                                               "path": "ca.crt"}]):
                    shutil.copy(api.ca_file, path / item["path"])
            elif "downwardAPI" in source:
                for item in source["downwardAPI"]["items"]:
                    field_path = item["fieldRef"]["fieldPath"]
                    (path / item["path"]).write_text(self._fields()[field_path])
            else:
                raise images.ImageError(f"projected source {sorted(source)} not played")

    def _fields(self) -> dict[str, str]:
        """What the Downward API's fieldRefs resolve to for this pod."""
        return {"metadata.name": self.name, "metadata.namespace": self.player.namespace,
                "status.podIP": self.ip, "spec.serviceAccountName":
                str(self.player.example.pod_spec.get("serviceAccountName", "default"))}

    def _env(self, spec: dict[str, Any]) -> dict[str, str]:
        env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOSTNAME": self.name,
            "HOME": "/root",
            "KUBERNETES_SERVICE_HOST": self.player.network.gateway,
            "KUBERNETES_SERVICE_PORT": str(self.player.kube.port),
        }
        fields = self._fields()
        for item in spec.get("env", []):
            if "value" in item:
                env[item["name"]] = expand(str(item["value"]), env)
            elif "fieldRef" in item.get("valueFrom", {}):
                env[item["name"]] = fields[item["valueFrom"]["fieldRef"]["fieldPath"]]
            elif "secretKeyRef" in item.get("valueFrom", {}):
                ref = item["valueFrom"]["secretKeyRef"]
                env[item["name"]] = self.player.example.secrets[ref["name"]][ref["key"]].decode()
            else:
                raise images.ImageError(f"env {item['name']}: source not played")
        return env

    def launch(self, spec: dict[str, Any], argv: list[str], log: Path) -> subprocess.Popen[bytes]:
        env = self._env(spec)
        mounts = [{"source": str(self._volumes[m["name"]]), "target": m["mountPath"],
                   "read_only": bool(m.get("readOnly"))} for m in spec.get("volumeMounts", [])]
        if "kube-api-access" in self._volumes and not any(
                m["target"] == SA_PATH for m in mounts):
            mounts.append({"source": str(self._volumes["kube-api-access"]), "target": SA_PATH,
                           "read_only": True})
        expanded = [expand(word, env) for word in argv]
        launch = self.dir / f"{spec['name']}.{time.monotonic_ns()}.json"
        launch.write_text(json.dumps({"argv": expanded, "env": env, "mounts": mounts,
                                      "working_dir": spec.get("workingDir")}))
        with log.open("ab") as out:
            return subprocess.Popen(["ip", "netns", "exec", self.netns, sys.executable,
                                     str(LAUNCH), str(launch)], stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)

    def _argv(self, spec: dict[str, Any]) -> list[str]:
        return images.argv(spec["image"], spec.get("command"), spec.get("args"))

    def log_path(self, container: str) -> Path:
        return self.dir / f"{container}.log"

    # --- life ------------------------------------------------------------------------------
    def start(self) -> Pod:
        self._thread.start()
        return self

    def _note(self, event: str) -> None:
        self.events.append(f"{time.strftime('%H:%M:%S')} {event}")

    def _start_container(self, container: Container) -> None:
        container.proc = self.launch(container.spec, self._argv(container.spec),
                                      self.log_path(container.name))
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
            for spec in self.player.example.pod_spec.get("initContainers", []):
                if self.terminating:
                    return
                if spec.get("restartPolicy") == "Always":
                    container = Container(spec, sidecar=True)
                    self.containers[container.name] = container
                    self._start_container(container)
                    continue
                self._run_init(spec)
            for spec in self.player.example.pod_spec["containers"]:
                if self.terminating:
                    return
                container = Container(spec)
                self.containers[container.name] = container
                self._start_container(container)
            self.phase = "Running"
            self._note("started")
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
                        self._stop_container(container, time.monotonic() + self.player
                                             .example.grace_seconds)
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
            self._note("Ready" if ready else "NotReady")
            self.player.pod_changed()

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
        grace = self.player.example.grace_seconds if grace is None else grace
        deadline = time.monotonic() + grace
        self.terminating = True
        self.phase = "Terminating"
        self.ready = False
        self._note("Terminating")
        self.player.pod_changed()
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
        self.player.network.remove_pod(self.netns)
        self.player.pod_changed()
