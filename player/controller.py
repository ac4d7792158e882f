"""The StatefulSet controller, played locally over one k8s/ example: ordered or parallel
pod management, scale, rolling restart, kills, DNS for its Services, a stand-in API."""

from __future__ import annotations

import concurrent.futures
import shutil
import threading
from pathlib import Path
from typing import Any

import httpx

from player.dns import Dnsmasq, Records, statefulset_records
from player.kubeapi import KubeApi
from player.kubelet import Pod
from player.manifests import Example, load
from player.netns import Network
from player.wait import wait_until

DOMAIN = "cluster.local"


class StatefulSetPlayer:
    """Plays the StatefulSet of ``example_dir`` (e.g. ``k8s/etcd``) in ``workdir``.

    >>> cluster = StatefulSetPlayer(Path("k8s/etcd"), workdir).start(3)
    >>> cluster.scale(5); cluster.rolling_restart(); cluster.members()
    """

    def __init__(self, example_dir: Path, workdir: Path, *,
                 overrides: dict[str, str] | None = None) -> None:
        self.example: Example = load(example_dir)
        self.workdir = workdir
        self.namespace = str(self.example.statefulset["metadata"].get("namespace", "default"))
        shutil.rmtree(workdir / "pods", ignore_errors=True)
        workdir.mkdir(parents=True, exist_ok=True)
        self._apply_overrides(overrides or {})
        self.network = Network()
        self.pods: dict[int, Pod] = {}
        self.replicas = 0
        self._dns_lock = threading.Lock()
        self.dns: Dnsmasq | None = None
        self.kube: KubeApi
        self._http = httpx.Client(timeout=2.0, trust_env=False)
        self._created_dirs: list[Path] = []

    def _apply_overrides(self, overrides: dict[str, str]) -> None:
        """Extra env for the sts-agent containers (test knobs such as poll intervals)."""
        if not overrides:
            return
        pod = self.example.pod_spec
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            if container["image"].split(":")[0] == "sts-agent":
                env = [e for e in container.get("env", []) if e["name"] not in overrides]
                env += [{"name": k, "value": v} for k, v in overrides.items()]
                container["env"] = env

    def _make_mount_points(self) -> None:
        """The containers' mount points, created on the host where missing (bind mounts
        need a directory to cover; what covers it stays private to each container) and
        removed again on close."""
        pod = self.example.pod_spec
        paths = {Path(m["mountPath"]) for c in [*pod.get("initContainers", []),
                                                 *pod["containers"]]
                 for m in c.get("volumeMounts", [])}
        paths.add(Path("/var/run/secrets/kubernetes.io/serviceaccount"))
        for path in sorted(paths):
            missing = [p for p in [path, *path.parents] if not p.exists()]
            if missing:
                path.mkdir(parents=True)
                self._created_dirs.extend(sorted(missing, key=lambda p: len(p.parts)))

    def _remove_mount_points(self) -> None:
        for path in reversed(self._created_dirs):
            try:
                path.rmdir()  # only if still empty: another player may be using it
            except OSError:
                pass
        self._created_dirs.clear()

    def search_domains(self) -> list[str]:
        return [f"{self.namespace}.svc.{DOMAIN}", f"svc.{DOMAIN}", DOMAIN]

    # --- setup -------------------------------------------------------------------------------
    def start(self, replicas: int | None = None) -> StatefulSetPlayer:
        """Bridge, DNS, API, then the StatefulSet's pods; returns when all are Ready."""
        self.network.up()
        self._make_mount_points()
        self.dns = Dnsmasq(self.workdir / "dns", listen=self.network.gateway, port=53,
                           domains=(DOMAIN,))
        self.dns.start()
        granted = {(verb, resource) for _, resource, verb in self.example.granted()}
        self.kube = KubeApi(self.workdir / "kube", host=self.network.gateway, tls=True,
                            granted=granted).start()
        replicas = self.example.spec.get("replicas", 1) if replicas is None else replicas
        self.kube.add_statefulset(self.example.name, replicas=replicas,
                                  namespace=self.namespace,
                                  service=self.example.service_name,
                                  manifest=self.example.statefulset)
        for service in self.example.services.values():
            self.kube.add_service(service, self.namespace)
        self.scale(replicas)
        return self

    def close(self) -> None:
        """Delete every pod at once without hooks, then the network, DNS and API."""
        for pod in list(self.pods.values()):
            pod.kill()
        self.pods.clear()
        if self.dns is not None:
            self.dns.stop()
        if hasattr(self, "kube"):
            self.kube.stop()
        self.network.down()
        self._remove_mount_points()
        self._http.close()

    # --- DNS -----------------------------------------------------------------------------------
    def pod_changed(self) -> None:
        """Publish what CoreDNS would: every pod under the headless Service
        (publishNotReadyAddresses), ready pods only under the other Services."""
        if self.dns is None:
            return
        with self._dns_lock:
            live = {o: p.ip for o, p in self.pods.items() if p.phase != "Gone"}
            records = statefulset_records(
                statefulset=self.example.name, service=self.example.service_name,
                namespace=self.namespace, domain=DOMAIN, pods=live)
            merged = Records(hosts=dict(records.hosts), srv=list(records.srv))
            for service in self.example.client_services():
                fqdn = f"{service}.{self.namespace}.svc.{DOMAIN}"
                for pod in self.pods.values():
                    if pod.ready and not pod.terminating:
                        merged.add_host(fqdn, pod.ip)
            self.dns.set_records(merged)

    # --- the controller --------------------------------------------------------------------
    def _create(self, ordinal: int) -> Pod:
        pod = Pod(self, ordinal)
        self.pods[ordinal] = pod
        self.pod_changed()
        return pod.start()

    def _delete(self, ordinal: int, *, grace: float | None = None) -> None:
        pod = self.pods[ordinal]
        pod.delete(grace=grace)
        del self.pods[ordinal]
        self.pod_changed()

    def scale(self, replicas: int, *, timeout: float = 180.0) -> None:
        """Change spec.replicas (the API first, as kubectl scale does), then create or
        delete pods as the controller does for the podManagementPolicy."""
        self.replicas = replicas
        if hasattr(self, "kube"):
            self.kube.scale(self.example.name, replicas, self.namespace)
        missing = [o for o in range(replicas) if o not in self.pods]
        extra = sorted((o for o in self.pods if o >= replicas), reverse=True)
        if self.example.policy == "Parallel":
            for ordinal in missing:
                self._create(ordinal)
            with concurrent.futures.ThreadPoolExecutor(max(1, len(extra))) as pool:
                list(pool.map(self._delete, extra))
            self.wait_ready(timeout=timeout)
            return
        for ordinal in missing:  # OrderedReady: each after the previous is Ready
            self._create(ordinal)
            self.wait_ready(ordinal, timeout=timeout)
        for ordinal in extra:  # highest first, each fully gone before the next
            self._delete(ordinal)

    def rolling_restart(self, *, timeout: float = 180.0) -> None:
        """A template change rolled out: highest ordinal first, each Ready before the next."""
        for ordinal in sorted(self.pods, reverse=True):
            self._delete(ordinal)
            self._create(ordinal)
            self.wait_ready(ordinal, timeout=timeout)

    def kill(self, ordinal: int) -> Pod:
        """SIGKILL the pod's containers (no preStop); the controller recreates it."""
        pod = self.pods[ordinal]
        pod.kill()
        return self._create(ordinal)

    def delete_pod(self, ordinal: int) -> Pod:
        """`kubectl delete pod`: graceful termination, then the controller recreates it."""
        self._delete(ordinal)
        return self._create(ordinal)

    def partition(self, ordinal: int) -> None:
        """A network partition: pod ``ordinal`` and the other pods no longer reach each
        other; the player (kubelet probes, DNS, the API) still reaches all of them."""
        self.network.partition(self.pods[ordinal].netns)

    def heal(self) -> None:
        self.network.heal()

    # --- observation -------------------------------------------------------------------------
    def wait_ready(self, *ordinals: int, timeout: float = 180.0) -> None:
        wanted = ordinals or tuple(range(self.replicas))

        def ready() -> bool:
            for ordinal in wanted:
                pod = self.pods.get(ordinal)
                failure = pod.dir / "failure.txt" if pod else None
                if failure is not None and failure.exists():
                    raise AssertionError(f"{pod.name if pod else ordinal} failed: "
                                         f"{failure.read_text()}")
            return all(o in self.pods and self.pods[o].ready for o in wanted)

        try:
            wait_until(ready, what=f"pods {list(wanted)} Ready", timeout=timeout, interval=0.1)
        except AssertionError:
            raise AssertionError(f"{self.describe()}") from None

    def status(self, ordinal: int) -> dict[str, Any]:
        """The sidecar's /status of one pod (port 9090 on the pod's address)."""
        answer = self._http.get(f"http://{self.pods[ordinal].ip}:9090/status").json()
        assert isinstance(answer, dict)
        return answer

    def members(self) -> list[dict[str, Any]]:
        """The membership as a ready pod's sidecar reports it (the leader's own view)."""
        for pod in self.pods.values():
            if pod.ready:
                view = self.status(pod.ordinal)["view"]["authority"]
                return list(view["members"])
        raise AssertionError("no ready pod to ask for members")

    def describe(self) -> str:
        """Pods, phases, events and the tail of each container's log: for failures."""
        lines = []
        for _, pod in sorted(self.pods.items()):
            lines.append(f"== {pod.name} {pod.ip} {pod.phase} ready={pod.ready}")
            lines.extend(f"   {event}" for event in pod.events[-12:])
            for log in sorted(pod.dir.glob("*.log")):
                tail = log.read_text(errors="replace").splitlines()[-12:]
                lines.append(f"   --- {log.name}")
                lines.extend(f"   {line[:300]}" for line in tail)
        return "\n".join(lines)


