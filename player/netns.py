"""A bridge on the host and a network namespace per pod: each pod has its own localhost
and its own address, reachable from the host and from the other pods, as on a node."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from pathlib import Path

ETC_NETNS = Path("/etc/netns")  # `ip netns exec` bind-mounts these files over /etc


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


class Network:
    """Bridge ``sts<i>br`` with ``10.77.<i>.1/24``; pods get ``10.77.<i>.10`` upwards."""

    def __init__(self, index: int | None = None) -> None:
        self._fixed = index is not None
        self._use(index if index is not None else self._free_index())
        self._next = 10
        self.pods: dict[str, str] = {}  # netns name -> address

    def _use(self, index: int) -> None:
        self.index = index
        self.prefix = f"sts{index}"
        self.bridge = f"{self.prefix}br"
        self.gateway = f"10.77.{index}.1"

    @staticmethod
    def _free_index(after: int = 0) -> int:
        taken = ip("-o", "link", "show").stdout
        for index in range(after + 1, 250):
            if f"sts{index}br:" not in taken:
                return index
        raise RuntimeError("no free sts<i>br bridge index")

    def up(self) -> Network:
        if self._fixed:
            self.down()
        # Another player (a parallel test worker) may take the same free index first:
        # `ip link add` is the atomic claim, the next index is tried when it fails.
        while ip("link", "add", self.bridge, "type", "bridge", check=False).returncode:
            if self._fixed:
                raise RuntimeError(f"bridge {self.bridge} exists")
            self._use(self._free_index(after=self.index))
        self._remove_pods()  # a run that was killed may have left its namespaces behind
        ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        return self

    def add_pod(self, name: str, *, search: list[str], hostname: str) -> tuple[str, str]:
        """A namespace for pod ``name``; returns (namespace name, pod IP)."""
        netns = f"{self.prefix}-{name}"
        address = f"10.77.{self.index}.{self._next}"
        veth = f"{self.prefix}v{self._next}"
        self._next = self._next + 1 if self._next < 250 else 10
        ip("netns", "del", netns, check=False)
        ip("link", "del", veth, check=False)
        ip("netns", "add", netns)
        ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns)
        ip("link", "set", veth, "master", self.bridge, "up")
        ip("-n", netns, "addr", "add", f"{address}/24", "dev", "eth0")
        ip("-n", netns, "link", "set", "eth0", "up")
        ip("-n", netns, "link", "set", "lo", "up")
        ip("-n", netns, "route", "add", "default", "via", self.gateway)
        etc = ETC_NETNS / netns
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "resolv.conf").write_text(
            f"search {' '.join(search)}\nnameserver {self.gateway}\noptions ndots:5\n")
        (etc / "hosts").write_text(f"127.0.0.1\tlocalhost\n{address}\t{hostname}\n")
        self.pods[netns] = address
        return netns, address

    def partition(self, netns: str) -> None:
        """Cut pod ``netns`` off from every other pod, both ways, with blackhole routes
        (iproute2 only); the host (probes, DNS, the API) still reaches it."""
        address = self.pods[netns]
        for other, other_address in self.pods.items():
            if other != netns:
                ip("-n", netns, "route", "replace", "blackhole", f"{other_address}/32")
                ip("-n", other, "route", "replace", "blackhole", f"{address}/32")

    def heal(self) -> None:
        """Remove every blackhole route: all pods reach each other again."""
        for netns in self.pods:
            for line in ip("-n", netns, "route", "show", "type", "blackhole").stdout.splitlines():
                if line.strip():
                    ip("-n", netns, "route", "del", *line.split(), check=False)

    def remove_pod(self, netns: str) -> None:
        """The pod's sandbox torn down: whatever still runs in it is killed first (a
        runtime's pid namespace ends with the pod: a daemon a hook left running too)."""
        for pid in ip("netns", "pids", netns, check=False).stdout.split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        ip("netns", "del", netns, check=False)
        shutil.rmtree(ETC_NETNS / netns, ignore_errors=True)
        self.pods.pop(netns, None)

    def _remove_pods(self) -> None:
        for line in ip("netns", "list").stdout.splitlines():
            netns = line.split()[0] if line.strip() else ""
            if netns.startswith(f"{self.prefix}-"):
                self.remove_pod(netns)

    def down(self) -> None:
        self._remove_pods()
        ip("link", "del", self.bridge, check=False)
