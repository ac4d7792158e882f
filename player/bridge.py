"""The bridge a real node's CNI network hangs its pods on, claimed atomically on the host:
``sts<i>br`` with ``10.77.<i>.1/24``, the first ``<i>`` no other node (another test
worker's) holds; the node names its address, subnet and cgroup root after it."""

from __future__ import annotations

import subprocess


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


class Bridge:
    """Bridge ``sts<i>br`` with ``10.77.<i>.1/24``."""

    def __init__(self) -> None:
        self._use(self._free_index())

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

    def up(self) -> Bridge:
        # Another node (a parallel test worker's) may take the same free index first:
        # `ip link add` is the atomic claim, the next index is tried when it fails.
        while ip("link", "add", self.bridge, "type", "bridge", check=False).returncode:
            self._use(self._free_index(after=self.index))
        ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        return self

    def down(self) -> None:
        ip("link", "del", self.bridge, check=False)
