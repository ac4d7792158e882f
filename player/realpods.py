"""A StatefulSet's pods on the real node (player.realnode) as the tests see them: what
the API says of each, its containers' logs as the kubelet wrote them, and the faults the
harness injects from outside (a crash by SIGKILL, a network partition by routes)."""

from __future__ import annotations

import contextlib
import subprocess
from dataclasses import dataclass
from pathlib import Path

from player.apiclient import JSON
from player.realnode import CGROUPS, RealNode, sigkill

PIDS = CGROUPS / "pids"  # any v1 hierarchy has every task; this one is always mounted


@dataclass
class RealPod:
    """Pod ``obj`` (the API's object) bound to ``node``."""

    node: RealNode
    obj: JSON

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])

    @property
    def namespace(self) -> str:
        return str(self.obj["metadata"]["namespace"])

    @property
    def uid(self) -> str:
        return str(self.obj["metadata"]["uid"])

    @property
    def ordinal(self) -> int:
        return int(self.name.rsplit("-", 1)[1])

    @property
    def ip(self) -> str:
        return str(self.obj.get("status", {}).get("podIP") or "")

    @property
    def phase(self) -> str:
        return str(self.obj.get("status", {}).get("phase") or "Pending")

    @property
    def terminating(self) -> bool:
        return bool(self.obj["metadata"].get("deletionTimestamp"))

    @property
    def ready(self) -> bool:
        """The API's Ready condition, and not terminating."""
        return api_ready(self.obj)

    def volume(self, name: str) -> Path:
        """Where the kubelet keeps the pod's emptyDir volume ``name`` on this host."""
        assert self.node.kubelet_root is not None, "the node is stopped"
        return (self.node.kubelet_root / "pods" / self.uid / "volumes"
                / "kubernetes.io~empty-dir" / name)

    # --- logs --------------------------------------------------------------------------------
    def log_files(self, container: str) -> list[Path]:
        """The log files of ``container``, one per run, oldest first: the kubelet's, or
        the node's kept links to them once the kubelet removed them (a pod deleted)."""
        self.node.keep_logs()
        directory = (self.node.kept_logs
                     / f"{self.namespace}_{self.name}_{self.uid}" / container)
        return sorted(directory.glob("*.log"), key=lambda p: int(p.stem)
                      if p.stem.isdigit() else -1)

    def log(self, container: str) -> str:
        """What ``container`` wrote over all its runs, without the CRI's prefixes."""
        return "".join(cri_text(path.read_text(errors="replace"))
                       for path in self.log_files(container))

    # --- faults ------------------------------------------------------------------------------
    def cgroups(self) -> list[Path]:
        """The pod's cgroup (every QoS class's place for it) in the pids hierarchy."""
        top = PIDS / self.node.cgroup_root.lstrip("/") / "kubepods"
        return [path for path in (top / f"pod{self.uid}", *top.glob(f"*/pod{self.uid}"))
                if path.is_dir()]

    def pids(self) -> list[int]:
        """Every process of the pod: its sandbox and every container."""
        found: list[int] = []
        for cgroup in self.cgroups():
            for procs in cgroup.rglob("cgroup.procs"):
                with contextlib.suppress(OSError):
                    found.extend(int(pid) for pid in procs.read_text().split())
        return found

    def container_pids(self, container: str) -> list[int]:
        """The processes of ``container``'s current run (its cgroup, which the kubelet
        names by the runtime's container ID)."""
        ids = [str(s.get("containerID", "")).split("://", 1)[-1]
               for s in self._statuses(container)]
        found: list[int] = []
        for cgroup in self.cgroups():
            for container_id in filter(None, ids):
                with contextlib.suppress(OSError):
                    found.extend(int(pid) for pid in
                                 (cgroup / container_id / "cgroup.procs").read_text().split())
        return found

    def kill_container(self, container: str) -> int:
        """SIGKILL every process of ``container``'s current run (an OOM kill, a crash):
        how many there were. The kubelet restarts it in the same pod."""
        pids = self.container_pids(container)
        sigkill(pids)
        return len(pids)

    def restarts(self, container: str) -> int:
        """The kubelet's restart count of ``container``."""
        return sum(int(s.get("restartCount", 0)) for s in self._statuses(container))

    def _statuses(self, container: str) -> list[JSON]:
        """The kubelet's status of ``container`` (one, or none before it is created)."""
        statuses = self.obj.get("status", {}).get("containerStatuses") or []
        return [s for s in statuses if s["name"] == container]

    def kill(self) -> int:
        """SIGKILL every process of the pod at once, no hook (a crash, a power cut): how
        many there were."""
        pids = self.pids()
        sigkill(pids)
        return len(pids)

    def route(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``ip route <args>`` inside the pod's network namespace (its sandbox's)."""
        pids = self.pids()
        if not pids:
            raise RuntimeError(f"{self.name} has no process to enter its network namespace")
        return subprocess.run(["nsenter", f"--net=/proc/{pids[0]}/ns/net", "ip", "route",
                               *args], capture_output=True, text=True, check=False)


def api_ready(pod: JSON) -> bool:
    """Pod object ``pod`` has its Ready condition True and is not being deleted."""
    conditions = pod.get("status", {}).get("conditions") or []
    return not pod["metadata"].get("deletionTimestamp") and any(
        c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def cri_text(text: str) -> str:
    """The lines of a CRI log file (``<time> <stream> <P|F> <text>``) as written: a P(artial)
    line continues on the next."""
    out: list[str] = []
    for line in text.splitlines():
        parts = line.split(" ", 3)
        if len(parts) < 3:
            continue
        out.append((parts[3] if len(parts) == 4 else "") + ("" if parts[2] == "P" else "\n"))
    return "".join(out)


def partition(pods: list[RealPod], cut: RealPod) -> None:
    """``cut`` and every other pod no longer reach each other, both ways, by blackhole
    routes in their network namespaces; the host (probes, the API, DNS) still reaches all."""
    for other in pods:
        if other.uid != cut.uid and other.ip:
            _check(cut.route("replace", "blackhole", f"{other.ip}/32"))
            _check(other.route("replace", "blackhole", f"{cut.ip}/32"))


def heal(pods: list[RealPod]) -> None:
    """Every blackhole route gone: all the pods reach each other again."""
    for pod in pods:
        if not pod.pids():
            continue  # gone since: its network namespace went with it
        for line in _check(pod.route("show", "type", "blackhole")).stdout.splitlines():
            if line.strip():
                pod.route("del", *line.split())


def _check(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(result.args)} exited {result.returncode}: "
                           f"{result.stderr.strip()}")
    return result
