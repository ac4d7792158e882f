"""The real Kubernetes control plane on this host: etcd, kube-apiserver,
kube-controller-manager and kube-scheduler at the pinned release, with generated PKI.

The API server listens on ``10.96.<i>.1:443`` (an address added to the host's loopback
interface), the address of the ``kubernetes`` Service as a cluster would give it, so pods
in their network namespaces reach it through their gateway as an in-cluster client does.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import yaml

from player.apiclient import ApiClient, ApiError
from player.bridge import ip
from player.peers import cached_binary
from player.pki import KeyPair, Pki
from player.proc import Proc
from player.wait import wait_until

INTERFACE = "lo"
DOMAIN = "cluster.local"
# What the e2e tier needs of the controller-manager: StatefulSets and their pods' life,
# Services' endpoints, namespaces and garbage collection, tokens, PDBs, PV binding, nodes.
CONTROLLERS = (
    "statefulset", "garbage-collector", "namespace", "serviceaccount",
    "serviceaccount-token", "root-ca-certificate-publisher", "endpointslice",
    "endpointslice-mirroring", "endpoints", "node-lifecycle", "taint-eviction",
    "pod-garbage-collector", "disruption", "persistentvolume-binder",
    "persistentvolume-protection", "persistentvolumeclaim-protection",
)
# The player provisions local volumes for claims of this class (player.provisioner).
STORAGE_CLASS = "player-local"
PROVISIONER = "sts-agent.io/player"


def kubernetes_binary(program: str) -> str:
    return cached_binary(program, "KUBERNETES_VERSION")


def etcd_binary() -> str:
    """The API server's etcd: 3.6, as Kubernetes 1.34 ships it (3.4 lacks the watch
    progress requests the API server's consistent reads use)."""
    return cached_binary("etcd", "ETCD_36_VERSION")


def _take_address() -> tuple[int, str]:
    """A free ``10.96.<i>.1`` on the host, claimed atomically (``ip addr add`` fails when
    another control plane holds it)."""
    for index in range(1, 250):
        address = f"10.96.{index}.1"
        if ip("addr", "add", f"{address}/32", "dev", INTERFACE, check=False).returncode == 0:
            return index, address
    raise RuntimeError(f"no free 10.96.<i>.1 address on {INTERFACE}")


_WRITING = threading.Lock()

# StatefulSet rollingUpdate.maxUnavailable is alpha in 1.34: without its gate the API
# server drops the field, and the agent's check of it could not be shown to work.
FEATURE_GATES = "--feature-gates=MaxUnavailableStatefulSet=true"


class ControlPlane:
    """One control plane in ``workdir``. ``components``: which controllers run beside the
    API server ("controller-manager", "scheduler"); the API server alone serves the
    integration tier, which only reads and patches objects."""

    def __init__(self, workdir: Path, *,
                 components: tuple[str, ...] = ("controller-manager", "scheduler"),
                 echo: bool = False, audit: bool = False) -> None:
        self.workdir = workdir
        self.components = components
        self.audit = audit  # every request's arrival in audit.log (who, what, when)
        self.echo = echo  # print the kubectl commands run (the demo)
        self.index = 0
        self.address = ""
        self.procs: dict[str, Proc] = {}
        self.pki = Pki(workdir / "pki")
        self._clients: dict[tuple[str, str | None, float], ApiClient] = {}
        self.started_seconds = 0.0

    # --- addresses and identities -------------------------------------------------------
    @property
    def server(self) -> str:
        return f"https://{self.address}:443"

    @property
    def service_range(self) -> str:
        return f"10.96.{self.index}.0/24"

    @property
    def ca(self) -> Path:
        return self.pki.ca.cert

    def client_cert(self, user: str, group: str | None = None) -> KeyPair:
        safe = user.replace(":", "-")
        return self.pki.issue(f"user-{safe}", common_name=user, organization=group)

    def client(self, user: str = "admin", group: str | None = "system:masters",
               *, timeout: float = 10.0) -> ApiClient:
        """An API client authenticated as ``user`` (in ``group``) by a client certificate;
        one per identity, shared (httpx clients are thread-safe)."""
        key = (user, group, timeout)
        if key not in self._clients:
            pair = self.client_cert(user, group)
            self._clients[key] = ApiClient(self.server, ca=self.ca, cert=pair.cert,
                                           key=pair.key, timeout=timeout)
        return self._clients[key]

    def kubeconfig(self, user: str = "admin", group: str | None = "system:masters") -> Path:
        """A kubeconfig file for ``user``, for the components and for kubectl."""
        pair = self.client_cert(user, group)
        path = self.workdir / f"{user.replace(':', '-')}.kubeconfig"
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "player",
            "clusters": [{"name": "player", "cluster": {
                "server": self.server, "certificate-authority": str(self.ca)}}],
            "users": [{"name": user, "user": {"client-certificate": str(pair.cert),
                                              "client-key": str(pair.key)}}],
            "contexts": [{"name": "player", "context": {"cluster": "player", "user": user}}],
        }
        with _WRITING:  # two nodes starting at once write CoreDNS's file alike
            partial = path.with_name(f".{path.name}.{threading.get_ident()}")
            partial.write_text(yaml.safe_dump(config))
            partial.replace(path)
        return path

    # --- life ----------------------------------------------------------------------------
    def start(self) -> ControlPlane:
        started = time.monotonic()
        self.index, self.address = _take_address()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._start_etcd()
        self._start_apiserver()
        if "controller-manager" in self.components:
            self._start_controller_manager()
        if "scheduler" in self.components:
            self._start_scheduler()
        self._bootstrap()
        self.started_seconds = time.monotonic() - started
        return self

    def _launch(self, name: str, command: list[str], env: dict[str, str] | None = None) -> None:
        proc = Proc(command, self.workdir / f"{name}.log",
                    env={**os.environ, **(env or {})} if env else None)
        proc.start()
        self.procs[name] = proc

    def _start_etcd(self) -> None:
        url = f"http://{self.address}"
        self._launch("etcd", [
            etcd_binary(), "--name", "control-plane", "--data-dir", str(self.workdir / "etcd"),
            "--listen-client-urls", f"{url}:2379", "--advertise-client-urls", f"{url}:2379",
            "--listen-peer-urls", f"{url}:2380", "--initial-advertise-peer-urls",
            f"{url}:2380", "--initial-cluster", f"control-plane={url}:2380",
            "--logger", "zap", "--log-outputs", "stderr",
        ])
        wait_until(lambda: httpx.get(f"{url}:2379/health", timeout=1).status_code == 200,
                   what="the control plane's etcd to answer", timeout=30, interval=0.1)

    def _start_apiserver(self) -> None:
        serving = self.pki.issue(
            "apiserver", common_name="kube-apiserver", server=True,
            sans=("DNS:kubernetes", "DNS:kubernetes.default", "DNS:kubernetes.default.svc",
                  f"DNS:kubernetes.default.svc.{DOMAIN}", "DNS:localhost",
                  "IP:127.0.0.1", f"IP:{self.address}"))
        sa = self.pki.service_account_keys()
        issuer = f"https://kubernetes.default.svc.{DOMAIN}"
        # kubectl logs and exec: the API server calls a real node's kubelet at the node's
        # InternalIP, checks its serving certificate, and is authorized there as an admin.
        kubelet_client = self.pki.issue("apiserver-kubelet-client",
                                        common_name="kube-apiserver-kubelet-client",
                                        organization="system:masters")
        self._launch("kube-apiserver", [
            kubernetes_binary("kube-apiserver"),
            f"--etcd-servers=http://{self.address}:2379",
            f"--bind-address={self.address}", "--secure-port=443",
            f"--advertise-address={self.address}",
            # The kubernetes Service's endpoints would be this loopback-only address.
            "--endpoint-reconciler-type=none",
            f"--tls-cert-file={serving.cert}", f"--tls-private-key-file={serving.key}",
            f"--client-ca-file={self.ca}",
            f"--service-account-issuer={issuer}",
            f"--service-account-key-file={sa.cert}",
            f"--service-account-signing-key-file={sa.key}",
            f"--api-audiences={issuer}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            f"--service-cluster-ip-range={self.service_range}",
            f"--kubelet-client-certificate={kubelet_client.cert}",
            f"--kubelet-client-key={kubelet_client.key}",
            f"--kubelet-certificate-authority={self.ca}",
            "--kubelet-preferred-address-types=InternalIP",
            "--profiling=false", "--event-ttl=1h", FEATURE_GATES, *self._audit_flags(),
        ], env={"GOMEMLIMIT": "200MiB", "GOGC": "50"})
        admin = self.client(timeout=2.0)

        def ready() -> bool:
            try:
                return admin.http.get("/readyz").status_code == 200
            except httpx.HTTPError:
                self._check_alive("kube-apiserver")
                return False

        wait_until(ready, what="kube-apiserver /readyz", timeout=60, interval=0.1)

    @property
    def audit_log(self) -> Path:
        return self.workdir / "audit.log"

    def _audit_flags(self) -> list[str]:
        """With ``audit``: one event per request as it arrives (its user, the user's pod,
        verb, resource), at the Metadata level, in ``audit_log`` as JSON lines."""
        if not self.audit:
            return []
        policy = self.workdir / "audit-policy.yaml"
        policy.write_text(yaml.safe_dump({
            "apiVersion": "audit.k8s.io/v1", "kind": "Policy",
            "omitStages": ["ResponseStarted", "ResponseComplete", "Panic"],
            "rules": [{"level": "Metadata"}]}))
        return [f"--audit-policy-file={policy}", f"--audit-log-path={self.audit_log}",
                "--audit-log-format=json", "--audit-log-maxsize=0"]

    def audit_events(self) -> list[dict[str, Any]]:
        """The requests audit.log holds so far (``audit`` on), oldest first."""
        events = []
        with contextlib.suppress(FileNotFoundError), self.audit_log.open() as log:
            for line in log:
                if line.endswith("\n"):  # the last line may be half written
                    events.append(json.loads(line))
        return events

    def _component_flags(self, user: str) -> list[str]:
        kubeconfig = self.kubeconfig(user, None)
        return [f"--kubeconfig={kubeconfig}", f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}", "--leader-elect=false",
                "--bind-address=127.0.0.1", "--secure-port=0"]

    def _start_controller_manager(self) -> None:
        sa = self.pki.service_account_keys()
        self._launch("kube-controller-manager", [
            kubernetes_binary("kube-controller-manager"),
            *self._component_flags("system:kube-controller-manager"),
            "--use-service-account-credentials",
            f"--service-account-private-key-file={sa.key}", f"--root-ca-file={self.ca}",
            "--controllers=" + ",".join(f"{c}-controller" for c in CONTROLLERS),
            "--node-monitor-period=2s", "--node-monitor-grace-period=20s",
            "--concurrent-statefulset-syncs=5", FEATURE_GATES,
        ], env={"GOMEMLIMIT": "100MiB"})

    def _start_scheduler(self) -> None:
        self._launch("kube-scheduler", [
            kubernetes_binary("kube-scheduler"),
            *self._component_flags("system:kube-scheduler"),
        ], env={"GOMEMLIMIT": "100MiB"})

    def _bootstrap(self) -> None:
        """What a cluster installer adds: a default StorageClass the player provisions."""
        admin = self.client()
        body = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                "metadata": {"name": STORAGE_CLASS, "annotations": {
                    "storageclass.kubernetes.io/is-default-class": "true"}},
                "provisioner": PROVISIONER, "reclaimPolicy": "Delete",
                "volumeBindingMode": "WaitForFirstConsumer"}
        try:
            admin.create("storage.k8s.io/v1", "storageclasses", body)
        except ApiError as exc:
            if exc.status != 409:
                raise

    def _check_alive(self, name: str) -> None:
        proc = self.procs[name]
        if not proc.running:
            raise RuntimeError(f"{name} exited: {proc.tail(15)}")

    def alive(self) -> list[str]:
        """Components that have exited (empty when all run)."""
        return [name for name, proc in self.procs.items() if not proc.running]

    def kubectl(self, *args: str, check: bool = True, timeout: float = 120.0,
                input_text: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run kubectl of the pinned release as admin; echoed when the player narrates."""
        command = [kubernetes_binary("kubectl"), f"--kubeconfig={self.kubeconfig()}", *args]
        if self.echo:
            print(f"$ kubectl {shlex.join(args)}", file=sys.stdout, flush=True)
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                input=input_text)
        if check and result.returncode != 0:
            raise RuntimeError(f"kubectl {shlex.join(args)} exited {result.returncode}: "
                               f"{result.stderr.strip()}")
        return result

    def stop(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()
        # Controllers first; the API server must be gone before its etcd (an old API
        # server reconnecting to a reused etcd would write stale data).
        for name in ("kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"):
            proc = self.procs.pop(name, None)
            if proc is not None:
                proc.stop(timeout=10)
        if self.address:
            ip("addr", "del", f"{self.address}/32", "dev", INTERFACE, check=False)
            self.address = ""

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()
