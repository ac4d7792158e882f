"""Acknowledged writes through real pods, and the power cut: what the outage scenarios share."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from player.pods import InitPods
from player.wait import wait_until


class Writes:
    """Acknowledged writes, each through a running pod: what must survive."""

    def __init__(self, pods: InitPods, ordinals: Sequence[int]) -> None:
        self.pods = pods
        self.ordinals = tuple(ordinals)
        self.acknowledged: dict[str, str] = {}

    def write(self, prefix: str, count: int) -> None:
        for index in range(count):
            key, value = f"w/{prefix}-{index}", f"{prefix}:{index}"
            wait_until(functools.partial(self.pods.harness.put, key, value),
                       what=f"the write of {key}", timeout=30)
            self.acknowledged[key] = value

    def assert_all_on_every_pod(self) -> None:
        for ordinal in self.ordinals:
            url = self.pods.cluster.api_url(ordinal)
            found = self.pods.harness.kv.read_prefix(url, "w/")
            lost = {k: v for k, v in self.acknowledged.items() if found.get(k) != v}
            assert not lost, f"{self.pods.store}-{ordinal} lost acknowledged writes: " \
                             f"{sorted(lost)}"


def kill(pods: InitPods, ordinal: int) -> None:
    """Power cut: the store and the sidecar killed, nothing flushed or said."""
    sidecar = pods.harness.sidecars.pop(ordinal, None)
    if sidecar is not None:
        sidecar.proc.kill()
    pods.harness.kill_store(ordinal)


def restart(pods: InitPods, *ordinals: int) -> None:
    pods.start(*ordinals)
    pods.wait_ready(*ordinals)
