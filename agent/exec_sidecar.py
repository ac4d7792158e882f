"""The exec store's parts of the sidecar: the starter, the leave by ``stop``, hook metrics."""

from __future__ import annotations

from typing import Any

import httpx

from agent.config.settings import Settings
from agent.exec_leave import ExecLeaver
from agent.exec_peers import ExecPeers
from agent.exec_start import ExecStarter, primaries_among
from agent.identity import parse_pod_name
from agent.kube import Kube
from agent.membership import Membership
from agent.metrics import Metrics
from agent.stores.exec.api import ExecBackend
from agent.stores.exec.contract import HookResult


def exec_parts(settings: Settings, backend: ExecBackend, membership: Membership, *,
               client: httpx.AsyncClient, kube: Kube, metrics: Metrics,
               domain: str | None, leave_args: dict[str, Any]
               ) -> tuple[ExecLeaver, ExecStarter]:
    """The leaver and the starter of an exec store's sidecar."""

    def observe(result: HookResult) -> None:
        metrics.hook_seconds.labels(hook=result.hook, outcome=result.outcome).observe(
            result.seconds)

    backend.hooks.on_result = observe
    pod = parse_pod_name(settings.pod_name) if settings.pod_name else None
    peers = ExecPeers(settings, domain)

    async def pod_exists(ordinal: int) -> bool | None:
        if pod is None or not settings.namespace:
            return None
        return await kube.pod(f"{pod.statefulset}-{ordinal}") is not None

    async def find_primaries() -> list[str]:
        return await primaries_among(client, list((await peers.urls()).values()))

    leaver = ExecLeaver(membership, backend, pod_exists=pod_exists, peer_url=peers.url,
                        primaries=find_primaries, **leave_args)

    starter = ExecStarter(backend, settings.output_dir, find_primaries=find_primaries,
                          leaving=lambda: membership.leaving, events=kube,
                          restart_failed_seconds=settings.exec_restart_failed_seconds)
    return leaver, starter
