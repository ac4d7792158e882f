"""A real node beside the control plane: Debian's containerd with its CRI plugin, the
kubelet of the control plane's release, the bridge CNI plugin and CoreDNS, each under this
node's own directory, network and cgroup parent, pulling the images of `make images` from
its own registry (player.registry).

Two nodes on one host (two test workers) do not collide: the node claims a bridge
``sts<i>br`` with ``10.77.<i>.1/24`` atomically (player.bridge) and everything else is
named from that claim: its address (the kubelet and CoreDNS bind it), the pods' subnet,
the CNI network, the kubelet's cgroup root ``/sts<i>-node``. The paths the kubelet and
containerd write outside their directories are named by pod or container, and only this
node's entries are removed at its end.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType

import httpx
import yaml

from player import nodeimages
from player.apiclient import ApiError
from player.bridge import Bridge
from player.controlplane import DOMAIN, ControlPlane
from player.peers import cached_binary
from player.proc import Proc
from player.provisioner import LocalProvisioner
from player.registry import Registry
from player.runtime import Containerd
from player.wait import GiveUp, wait_until

CNI_PLUGINS = Path("/usr/lib/cni")  # Debian's containernetworking-plugins
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"  # built by make images from Kubernetes' pause.c
CGROUPS = Path("/sys/fs/cgroup")
CONTAINER_LOG_LINKS = Path("/var/log/containers")  # the kubelet's, not configurable
CNI_RESULTS = Path("/var/lib/cni/results")  # libcni's cache, not configurable in containerd
KUBELET_PORT = 10250
LOG_KEEPING_SECONDS = 0.2  # how often new container log files are hard-linked


def kubelet_binary() -> str:
    return cached_binary("kubelet", "KUBERNETES_VERSION")


def coredns_binary() -> str:
    return cached_binary("coredns", "COREDNS_VERSION")


def _cgroup_controllers(*, unified: bool = False) -> list[Path]:
    """The v1 hierarchies the kubelet's cgroupfs driver checks its cgroup root in (the
    named systemd one too), and with ``unified`` the v2 one, where runc adds it too."""
    return [path for path in sorted(CGROUPS.iterdir())
            if path.is_dir() and not path.is_symlink() and (unified or path.name != "unified")]


def _remove_cgroup_tree(top: Path) -> None:
    """Remove ``top`` and every cgroup under it, deepest first (each must be empty of tasks)."""
    if not top.is_dir():
        return
    for directory in sorted((p for p in top.rglob("*") if p.is_dir()),
                            key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            directory.rmdir()
    with contextlib.suppress(OSError):
        top.rmdir()


def _mounts_under(*roots: Path) -> list[str]:
    """Mount points at or under ``roots``, deepest first (from /proc/self/mountinfo)."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if any(point == str(root) or point.startswith(f"{root}/") for root in roots):
            found.append(point)
    return sorted(found, key=lambda p: p.count("/"), reverse=True)


def sigkill(pids: Iterable[int]) -> int:
    """SIGKILL each of ``pids``: how many were still there to receive it."""
    killed = 0
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
            killed += 1
    return killed


def processes_naming(text: str) -> list[int]:
    """The processes whose command line (arguments joined by spaces) contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                    errors="replace")
            except OSError:
                continue  # gone meanwhile
            if text in cmdline:
                found.append(int(entry.name))
    return found


class RealNode:
    """A node of ``control_plane`` named ``sts<i>-node-<random>``, its state under
    ``workdir``."""

    def __init__(self, control_plane: ControlPlane, workdir: Path, *,
                 seeded: bool = True) -> None:
        self.control_plane = control_plane
        self.workdir = workdir
        # The runtime starts from the images already pulled (player.nodeimages); the
        # kubelet's pulls then resolve each tag at the registry and fetch nothing.
        self.seeded = seeded
        self.network = Bridge()
        self.name = ""  # sts<i>-node-<random> once the network is claimed
        self._claimed = False  # the bridge (and the names after it) are this node's
        self.runtime: Containerd | None = None
        self.kubelet: Proc | None = None
        self.coredns: Proc | None = None
        self.registry: Registry | None = None
        self.kubelet_root: Path | None = None
        self.volumes: LocalProvisioner | None = None
        self.events: list[str] = []
        self.started_seconds = 0.0
        self._dns_down = False  # CoreDNS stopped on purpose (stop_dns)
        self._stopping = threading.Event()
        self._log_keeper: threading.Thread | None = None

    @property
    def kubelet_log(self) -> Path:
        return self.workdir / "kubelet.log"

    @property
    def pod_logs(self) -> Path:
        """Where the kubelet writes the containers' logs (podLogsDir)."""
        return self.workdir / "pod-logs"

    @property
    def kept_logs(self) -> Path:
        """Every container log file of this node hard-linked as it appears, as a log
        shipper would keep it: the kubelet removes a deleted pod's logs, these stay."""
        return self.workdir / "kept-logs"

    def keep_logs(self) -> None:
        """Hard-link the log files the kubelet made since the last call (same inode:
        what is written after is in the kept copy too)."""
        for path in self.pod_logs.glob("*/*/*.log"):
            kept = self.kept_logs / path.relative_to(self.pod_logs)
            if not kept.exists():
                kept.parent.mkdir(parents=True, exist_ok=True)
                with contextlib.suppress(FileNotFoundError, FileExistsError):
                    os.link(path, kept)

    def _keep_logs_until_stopped(self) -> None:
        while not self._stopping.wait(LOG_KEEPING_SECONDS):
            try:
                self.keep_logs()
            except OSError as exc:  # noted, and tried again
                self._note(f"keeping logs failed: {exc}")

    # --- names taken from the network's claim ------------------------------------------------
    @property
    def address(self) -> str:
        """The node's InternalIP: the kubelet, its API and CoreDNS bind it; pods route by it."""
        return self.network.gateway

    @property
    def cgroup_root(self) -> str:
        return f"/{self.network.prefix}-node"

    @property
    def subnet(self) -> str:
        return f"10.77.{self.network.index}.0/24"

    def _note(self, event: str) -> None:
        self.events.append(f"{time.strftime('%H:%M:%S')} {event}")

    # --- life --------------------------------------------------------------------------------
    def start(self) -> RealNode:
        """Up and Ready; a start that fails half-way undoes what it did before raising."""
        started = time.monotonic()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.network.up()
        self._claimed = True
        # A name of its own even where a node before it had the same bridge: the pods
        # bound to that node (still terminating) must not come to this one.
        self.name = f"{self.network.prefix}-node-{secrets.token_hex(3)}"
        try:
            self._start_runtime()
            self._start_coredns()
            self._start_kubelet()
            self.volumes = LocalProvisioner(self.control_plane, self.name,
                                            self.workdir / "volumes", self._note).start()
            self._log_keeper = threading.Thread(target=self._keep_logs_until_stopped,
                                                name=f"{self.name}-logs", daemon=True)
            self._log_keeper.start()
        except BaseException:
            self.stop()
            raise
        self.started_seconds = time.monotonic() - started
        return self

    def _start_runtime(self) -> None:
        cni = self.workdir / "cni"
        (cni / "net.d").mkdir(parents=True, exist_ok=True)
        conflist = {
            "cniVersion": "0.4.0", "name": self.network.prefix,
            "plugins": [{
                "type": "bridge", "bridge": self.network.bridge, "isGateway": True,
                # Without a default route through the bridge a pod has no way to the
                # host's addresses (the API server's).
                "isDefaultGateway": True, "ipMasq": False, "hairpinMode": True,
                "ipam": {"type": "host-local", "dataDir": str(cni / "ipam"),
                         "ranges": [[{"subnet": self.subnet, "gateway": self.address,
                                      "rangeStart": f"10.77.{self.network.index}.10"}]]},
            }],
        }
        (cni / "net.d" / "10-pods.conflist").write_text(json.dumps(conflist, indent=2))
        self.registry = Registry(self.workdir / "registry", self.address)
        self.registry.start()
        table = 'plugins."io.containerd.grpc.v1.cri"'
        cri = (
            f"[{table}]\n"
            f'  sandbox_image = "{PAUSE_IMAGE}"\n'
            # Root here lacks CAP_SYS_RESOURCE: a negative oom_score_adj is refused, and
            # runc fails every sandbox unless the runtime keeps the score at its own.
            "  restrict_oom_score_adj = true\n"
            # exec and port-forward streams: a port of their own on loopback, per node.
            '  stream_server_address = "127.0.0.1"\n  stream_server_port = "0"\n'
            # The pods' network namespaces under this runtime's state, not /var/run/netns.
            "  netns_mounts_under_state_dir = true\n"
            f"[{table}.containerd]\n"
            '  snapshotter = "overlayfs"\n  default_runtime_name = "runc"\n'
            f"[{table}.containerd.runtimes.runc]\n"
            '  runtime_type = "io.containerd.runc.v2"\n'
            f"[{table}.cni]\n"
            f'  bin_dir = "{CNI_PLUGINS}"\n  conf_dir = "{cni / "net.d"}"\n'
            # Every registry host through this node's registry, as in an air-gapped cluster.
            f'[{table}.registry.mirrors."*"]\n'
            f'  endpoint = ["http://{self.registry.endpoint}"]\n'
        )
        self.runtime = Containerd(self.workdir / "containerd", cri=cri)
        if self.seeded:
            nodeimages.seed(self.runtime.root)
        self.runtime.__enter__()

    def _start_coredns(self) -> None:
        """CoreDNS on the node's address, serving the cluster domain from the API with
        kubeadm's Corefile (without the upstream forward: no network beyond this host)."""
        admin = self.control_plane.client()
        rules = [{"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"],
                  "verbs": ["list", "watch"]},
                 {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
                  "verbs": ["list", "watch"]}]
        for kind, body in (
                ("clusterroles", {"apiVersion": "rbac.authorization.k8s.io/v1",
                                  "kind": "ClusterRole", "metadata": {"name": "system:coredns"},
                                  "rules": rules}),
                ("clusterrolebindings", {
                    "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                    "metadata": {"name": "system:coredns"},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                "name": "system:coredns"},
                    "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                                  "name": "system:coredns"}]})):
            try:
                admin.create("rbac.authorization.k8s.io/v1", kind, body)
            except ApiError as exc:
                if exc.status != 409:
                    raise
        kubeconfig = self.control_plane.kubeconfig("system:coredns", None)
        corefile = self.workdir / "Corefile"
        corefile.write_text(
            ".:53 {\n"
            f"    bind {self.address}\n"
            "    errors\n"
            f"    kubernetes {DOMAIN} in-addr.arpa ip6.arpa {{\n"
            f"        kubeconfig {kubeconfig} player\n"
            "        pods insecure\n"
            "        fallthrough in-addr.arpa ip6.arpa\n"
            "        ttl 30\n"
            "    }\n"
            f"    cache 30 {{\n        disable success {DOMAIN}\n"
            f"        disable denial {DOMAIN}\n    }}\n"
            "    loop\n    loadbalance\n"
            "}\n")
        self.coredns = Proc([coredns_binary(), "-conf", str(corefile)],
                            self.workdir / "coredns.log")
        self.coredns.start()

    def _start_kubelet(self) -> None:
        assert self.runtime is not None
        # The kubelet's sockets (pod-resources, plugins) live in its root: a unix socket
        # path has 108 bytes at most, so the root is a short directory of its own.
        root = self.kubelet_root = Path(tempfile.mkdtemp(prefix="kubelet-", dir="/tmp"))
        for controller in _cgroup_controllers():
            top = controller / self.cgroup_root.lstrip("/")
            _remove_cgroup_tree(top)  # a killed run's, if any
            top.mkdir(exist_ok=True)
            if controller.name == "cpuset":  # a new cpuset has no CPUs until given some
                for key in ("cpuset.cpus", "cpuset.mems"):
                    (top / key).write_text((controller / key).read_text())
        serving = self.control_plane.pki.issue(
            f"kubelet-{self.name}", common_name=f"system:node:{self.name}", server=True,
            sans=(f"IP:{self.address}", f"DNS:{self.name}"))
        resolv = self.workdir / "resolv.conf"  # the host's search list is not the pods'
        resolv.write_text(f"nameserver {self.address}\n")
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
            "address": self.address, "port": KUBELET_PORT, "readOnlyPort": 0,
            "healthzBindAddress": self.address, "healthzPort": 10248,
            "containerRuntimeEndpoint": f"unix://{self.runtime.socket}",
            "cgroupDriver": "cgroupfs", "cgroupRoot": self.cgroup_root,
            # cgroup v1 and swap on this machine: accepted, not failed on.
            "failCgroupV1": False, "failSwapOn": False,
            "authentication": {"anonymous": {"enabled": False},
                               "webhook": {"enabled": True},
                               "x509": {"clientCAFile": str(self.control_plane.ca)}},
            "authorization": {"mode": "Webhook"},
            "tlsCertFile": str(serving.cert), "tlsPrivateKeyFile": str(serving.key),
            "clusterDomain": DOMAIN, "clusterDNS": [self.address], "resolvConf": str(resolv),
            # KUBE-FIREWALL would drop the pods' traffic to the host's 127/8 addresses.
            "makeIPTablesUtilChains": False,
            # No registry to pull from again: never garbage-collect an image.
            "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
            "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%",
                             "imagefs.available": "1%", "nodefs.inodesFree": "1%"},
            "podLogsDir": str(self.pod_logs),
            "volumePluginDir": str(self.workdir / "volume-plugins"),
            "serializeImagePulls": False,
        }
        config_file = self.workdir / "kubelet.yaml"
        config_file.write_text(yaml.safe_dump(config))
        kubeconfig = self.control_plane.kubeconfig(f"system:node:{self.name}", "system:nodes")
        self.kubelet = Proc([
            kubelet_binary(), f"--config={config_file}", f"--kubeconfig={kubeconfig}",
            f"--hostname-override={self.name}", f"--node-ip={self.address}",
            f"--root-dir={root}", f"--cert-dir={self.workdir / 'kubelet-pki'}",
        ], self.kubelet_log)
        self.kubelet.start()
        wait_until(self._node_ready, what=f"node {self.name} Ready (kubelet.log)",
                   timeout=60, interval=0.2)

    def _node_ready(self) -> bool:
        assert self.kubelet is not None
        if not self.kubelet.running:
            raise GiveUp(f"the kubelet exited: {self.kubelet.tail(15)}")
        try:
            node = self.control_plane.client().get("v1", "nodes", self.name)
        except httpx.HTTPError:
            return False
        conditions = (node or {}).get("status", {}).get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def stop_dns(self) -> None:
        """CoreDNS stopped (a DNS outage) until start_dns()."""
        assert self.coredns is not None
        self._dns_down = True
        self.coredns.stop(timeout=5)

    def start_dns(self) -> None:
        assert self.coredns is not None
        self.coredns.start()
        self._dns_down = False

    def exited(self) -> list[str]:
        """The node's components that exited while it runs (with their logs' tails)."""
        procs = [("kubelet", self.kubelet)] + ([] if self._dns_down else
                                               [("coredns", self.coredns)])
        dead = [f"{name}: {proc.tail(10)}" for name, proc in procs
                if proc is not None and not proc.running]
        processes = (("containerd", self.runtime.process if self.runtime else None),
                     ("registry", self.registry.process if self.registry else None))
        for name, process in processes:
            if process is not None and process.poll() is not None:
                dead.append(f"{name} exited {process.returncode}")
        return dead

    # --- end ---------------------------------------------------------------------------------
    def stop(self) -> None:
        """Everything this node started gone, and what it wrote outside its directory;
        once (a second call does nothing: the names may be another node's by then). Each
        step runs whatever the ones before it met; the first failure is raised at the end."""
        failures: list[BaseException] = []

        def step(work: Callable[[], object]) -> None:
            try:
                work()
            except Exception as exc:  # the rest must still be cleaned; raised below
                failures.append(exc)

        self._stopping.set()
        if self._log_keeper is not None:
            self._log_keeper.join()
            self._log_keeper = None
        if self.volumes is not None:
            step(self.volumes.stop)
            self.volumes = None
        if self.kubelet is not None:
            step(functools.partial(self.kubelet.stop, timeout=10))
            self.kubelet = None
        if self.runtime is not None:
            step(functools.partial(self._stop_runtime, self.runtime))
            self.runtime = None
        if self.coredns is not None:
            step(functools.partial(self.coredns.stop, timeout=5))
            self.coredns = None
        if self.registry is not None:
            step(self.registry.stop)
            self.registry = None
        if self._claimed:
            step(self._remove_cgroups)
            step(self._remove_log_links)
            step(self.network.down)
            self._claimed = False
            with contextlib.suppress(ApiError, httpx.HTTPError):
                self.control_plane.client().delete("v1", "nodes", self.name)
        if failures:
            raise failures[0]

    def lose(self, timeout: float = 30.0) -> None:
        """The machine is gone at once (power, hardware): every process of the node is
        SIGKILLed (the kubelet first, so it reports nothing more; containerd and its
        shims; every process of every pod; CoreDNS; its registry) and nothing is said to
        the API: the Node and its pods stay as they were until the control plane notices
        the silence. stop() clears what is left on the host."""
        self._stopping.set()
        if self.volumes is not None:
            self.volumes.stop()  # the node's disks went with it
        for proc in (self.kubelet, self.coredns):
            if proc is not None:
                proc.kill()
        if self.runtime is not None and self.runtime.process is not None:
            self.runtime.process.kill()
            self.runtime.process.wait()
            sigkill(processes_naming(f"-address {self.runtime.socket} "))
        if self.registry is not None and self.registry.process is not None:
            self.registry.process.kill()
            self.registry.process.wait()
        wait_until(lambda: not self._kill_pod_processes(), timeout=timeout, interval=0.1,
                   what=f"every process of {self.name}'s pods gone")

    def _kill_pod_processes(self) -> int:
        """SIGKILL every task under this node's cgroup root: how many there were."""
        killed = 0
        for controller in _cgroup_controllers(unified=True):
            top = controller / self.cgroup_root.lstrip("/")
            for tasks in top.rglob("tasks") if top.is_dir() else ():
                with contextlib.suppress(OSError):
                    killed += sigkill(int(pid) for pid in tasks.read_text().split())
        return killed

    def _stop_runtime(self, runtime: Containerd) -> None:
        # The CNI plugins' cached results (libcni's, at a fixed path) are named by the
        # pods' sandboxes, which go without a CNI DEL when their tasks are deleted.
        sandboxes = runtime.ctr("containers", "ls", "-q", check=False).stdout.split()
        runtime.close()  # every task killed, every container deleted
        # A task the runtime was still making when it was listed (a sandbox the kubelet
        # asked for just before it stopped) keeps its shim after containerd is gone.
        sigkill(processes_naming(f"-address {runtime.socket} "))
        # What outlives them: the pods' network namespaces, the kubelet's volume mounts.
        roots = [runtime.sockets, self.workdir]
        if self.kubelet_root is not None:
            roots.append(self.kubelet_root)
        for point in _mounts_under(*roots):
            subprocess.run(["umount", "-l", point], check=False, capture_output=True)
        shutil.rmtree(runtime.sockets, ignore_errors=True)
        if self.kubelet_root is not None:
            shutil.rmtree(self.kubelet_root, ignore_errors=True)
            self.kubelet_root = None
        if CNI_RESULTS.is_dir():
            for cached in CNI_RESULTS.iterdir():
                if any(f"-{sandbox}-" in cached.name for sandbox in sandboxes):
                    cached.unlink(missing_ok=True)

    def _remove_cgroups(self) -> None:
        self._kill_pod_processes()  # a container the runtime did not stop
        for controller in _cgroup_controllers(unified=True):
            _remove_cgroup_tree(controller / self.cgroup_root.lstrip("/"))

    def _remove_log_links(self) -> None:
        """This node's links in the host's /var/log/containers. Every kubelet on the host
        (other nodes, the other worker's) adds and removes its own links there meanwhile:
        one listed may be gone by the time it is read."""
        logs = self.pod_logs
        if CONTAINER_LOG_LINKS.is_dir():
            for link in CONTAINER_LOG_LINKS.iterdir():
                try:
                    target = os.readlink(link)
                except OSError:  # gone since it was listed, or not a link
                    continue
                if target.startswith(f"{logs}/"):
                    link.unlink(missing_ok=True)

    def __enter__(self) -> RealNode:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

