"""The exec store's parts of the sidecar: the starter, the departure by ``stop``, hook metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.storekit.capabilities import SidecarContext
from agent.stores.exec.contract import HookResult
from agent.stores.exec.leave import ExecDeparture
from agent.stores.exec.options import exec_options
from agent.stores.exec.peers import ExecPeers
from agent.stores.exec.start import ExecStarter, primaries_among

if TYPE_CHECKING:
    from agent.stores.exec.api import ExecBackend


class ExecParts:
    """The departure and the starter of one exec sidecar, sharing how they find the other
    pods' agents and the primaries among them; every hook run feeds the hook metric."""

    def __init__(self, backend: ExecBackend, context: SidecarContext) -> None:
        self.context = context
        settings, metrics = context.settings, context.metrics

        def observe(result: HookResult) -> None:
            metrics.hook_seconds.labels(hook=result.hook, outcome=result.outcome).observe(
                result.seconds)

        backend.hooks.on_result = observe
        self.pod = settings.pod
        self.peers = ExecPeers(settings, context.domain)
        self.departure = ExecDeparture(backend, pod_exists=self.pod_exists,
                                       peer_url=self.peers.url, primaries=self.primaries)
        self.starter = ExecStarter(
            backend, settings.output_dir, find_primaries=self.primaries,
            leaving=lambda: context.membership.leaving, events=context.kube,
            restart_failed_seconds=exec_options(settings).exec_restart_failed_seconds)

    async def pod_exists(self, ordinal: int) -> bool | None:
        if self.pod is None or not self.context.settings.namespace:
            return None
        return await self.context.kube.pod(f"{self.pod.statefulset}-{ordinal}") is not None

    async def primaries(self) -> list[str]:
        return await primaries_among(self.context.client,
                                     list((await self.peers.urls()).values()))
