"""The sidecar's composition root: build the parts, then run them under guarded root tasks."""

from __future__ import annotations

import asyncio
import gc
import signal
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog
from aiohttp import web

from agent.config.settings import Settings
from agent.errors import ConfigError, KubeError
from agent.kube import Kube, import_client
from agent.leave import Events, Leaver
from agent.membership import Membership
from agent.metrics import Metrics
from agent.model import Snapshot
from agent.promote import Promoter
from agent.quorum import update_strategy_problem
from agent.readiness import Policy
from agent.reconfigure import RaftDeparture
from agent.repair import Repairer
from agent.server import Routes, make_server
from agent.storeclient import http_client
from agent.storekit.capabilities import (
    Backend,
    Departing,
    Departure,
    Mendable,
    Promotable,
    Reconfigurable,
    SidecarContext,
    SlowView,
    Started,
    Starter,
)

log = structlog.get_logger("agent.sidecar")


async def guarded(name: str, coroutine: Coroutine[Any, Any, None]) -> None:
    """Run a root task; log how it ended. The first root task to end stops the others."""
    try:
        await coroutine
        log.info("task_done", task=name)
    except asyncio.CancelledError:
        log.debug("task_cancelled", task=name)
        raise
    except Exception:
        log.exception("task_crashed", task=name)
        raise


async def check_update_strategy(kube: Kube, statefulset: str) -> str | None:
    """Warn (log and a Warning Event on the pod) when the StatefulSet's rolling update may
    restart more members at once than quorum spares; said once, at start. An API that
    cannot be read is only logged: nothing depends on this check."""
    try:
        # The API client's import (a quarter second of CPU, up to a second on a busy
        # node) runs in a thread: the first poll, and so readiness, does not wait for it.
        await asyncio.to_thread(import_client)
        replicas, max_unavailable = await kube.rolling_update(statefulset)
    except KubeError as exc:
        log.info("update_strategy_unread", statefulset=statefulset, error=exc.message)
        return None
    except ImportError as exc:
        log.info("update_strategy_unread", statefulset=statefulset,
                 error=f"{type(exc).__name__}: {exc}")
        return None
    problem = update_strategy_problem(replicas, max_unavailable)
    if problem is not None:
        log.warning("update_strategy_unsafe", statefulset=statefulset, problem=problem)
        await kube.event(reason="UnsafeUpdateStrategy", message=problem, warning=True)
    return problem


def default_seeds(settings: Settings, domain: str | None) -> list[str]:
    """Peers' store API URLs from their stable names, when none are configured.

    The bootstrap ordinals and every ordinal below this pod's (down to the first) of
    this StatefulSet behind its headless Service, this pod excluded; no DNS query is
    needed to build them.
    """
    if settings.seed_urls:
        return settings.seed_url_list()
    port = settings.effective_client_port()
    pod = settings.pod
    if not (pod and settings.service and settings.namespace and domain and port):
        return []
    bootstrap = settings.bootstrap_ordinals()
    ordinals = range(bootstrap.start, max(bootstrap.stop, pod.ordinal + 1))
    scheme = spec.url_scheme if (spec := settings.store()) is not None else "http"
    return [
        f"{scheme}://{pod.statefulset}-{o}.{settings.service}.{settings.namespace}.svc.{domain}"
        f":{port}"
        for o in ordinals if o != pod.ordinal
    ]


def departure_of(backend: Backend, context: SidecarContext) -> Departure:
    """How this store's member leaves, by what its backend is: its own departure (a member
    that leaves by stopping), else a removal through the raft leader."""
    if isinstance(backend, Departing):
        return backend.departure(context)
    if isinstance(backend, Reconfigurable):
        return RaftDeparture(backend)
    raise ConfigError(f"{backend.name}: its backend can neither be reconfigured nor depart "
                      "(a store folder implements Reconfigurable or Departing)")


def after_poll(settings: Settings, backend: Backend, events: Events | None
               ) -> Callable[[Snapshot], Awaitable[None]] | None:
    """What runs after each poll, by what the backend can do: promote a caught-up learner
    of its own, nudge its node (Consul's re-join)."""
    steps: list[Callable[[Snapshot], Awaitable[None]]] = []
    if settings.promote_learner and isinstance(backend, Promotable):
        steps.append(Promoter(backend, max_lag_entries=settings.max_lag_entries).on_poll)
    if isinstance(backend, Mendable):
        mendable = backend

        async def mend(snapshot: Snapshot) -> None:
            await mendable.mend(snapshot, events)

        steps.append(mend)
    if not steps:
        return None

    async def on_poll(snapshot: Snapshot) -> None:
        for step in steps:
            await step(snapshot)

    return on_poll


@dataclass
class Parts:
    """Everything the sidecar runs, built before anything runs."""

    settings: Settings
    store_url: str
    membership: Membership
    leaver: Leaver
    kube: Kube
    routes: Routes
    repairer: Repairer | None = None
    starter: Starter | None = None
    checks: list[asyncio.Task[str | None]] = field(default_factory=list)


def build(settings: Settings, client: httpx.AsyncClient, *, domain: str | None) -> Parts:
    """The sidecar's parts for the configured store, chosen by what its backend is."""
    spec = settings.store()
    assert spec is not None
    store_url = settings.store_url or spec.default_url
    metrics = Metrics()
    backend: Backend = spec.backend_class()(client, store_url,
                                            peer_api_port=settings.client_port,
                                            settings=settings)
    request_timeout = settings.store_timeout_seconds
    if isinstance(backend, SlowView):
        request_timeout = max(request_timeout, backend.view_seconds())
    kube = Kube(settings, on_event=metrics.count_event)
    in_kubernetes = bool(settings.namespace)
    events = kube if in_kubernetes and settings.pod_name else None
    membership = Membership(
        backend,
        policy=Policy(stale_after_seconds=settings.stale_after_seconds,
                      max_lag_entries=settings.max_lag_entries,
                      accept_learner=settings.accept_learner),
        poll_interval_seconds=settings.poll_interval_seconds,
        # One poll reads this store, the leader, maybe the peers and a leader through
        # them: four rounds at most, each bounded by the store timeout.
        poll_timeout_seconds=request_timeout * 4 + 1,
        request_timeout_seconds=request_timeout,
        metrics=metrics,
        seed_urls=default_seeds(settings, domain),
        on_poll=after_poll(settings, backend, events),
    )
    context = SidecarContext(settings=settings, client=client, kube=kube, metrics=metrics,
                             membership=membership, domain=domain)
    statefulset = settings.statefulset_name()
    leaver = Leaver(
        membership, departure_of(backend, context),
        policy=settings.leave_policy,
        ordinal=settings.pod.ordinal if settings.pod else None,
        statefulset=statefulset,
        replicas=kube if in_kubernetes else None,
        events=events,
        deadline_seconds=settings.leave_deadline_seconds(),
        deadline_problem=settings.leave_time_problem(),
    )
    starter = backend.starter(context) if isinstance(backend, Started) else None
    repairer = None
    if settings.repair and isinstance(backend, Reconfigurable) and in_kubernetes \
            and statefulset:
        repairer = Repairer(membership, backend, pods=kube, events=events,
                            statefulset=statefulset,
                            after_seconds=settings.repair_after_seconds,
                            interval_seconds=settings.repair_interval_seconds,
                            metrics=metrics)
    parts: dict[str, Any] = {}
    if starter is not None and isinstance(backend, Started):
        parts = backend.status_parts(starter)
    routes = Routes(membership, liveness_timeout_seconds=settings.liveness_timeout_seconds,
                    info={"backend": settings.backend, "store_url": redact(store_url),
                          "pod": settings.pod_name, "namespace": settings.namespace,
                          "leave_policy": settings.leave_policy},
                    leaver=leaver, leave_token_file=settings.leave_token_file,
                    native_sidecar=settings.native_sidecar,
                    repair=repairer.state if repairer is not None else None,
                    parts=parts)
    return Parts(settings=settings, store_url=store_url, membership=membership,
                 leaver=leaver, kube=kube, routes=routes, repairer=repairer,
                 starter=starter)


async def run_sidecar(settings: Settings, *, stop: asyncio.Event | None = None,
                      domain: str | None = None) -> int:
    """Serve probes and poll the store until SIGTERM/SIGINT (or ``stop``)."""
    stop = stop or asyncio.Event()
    signalled: list[int] = []

    def on_signal(signum: int) -> None:
        signalled.append(signum)
        stop.set()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        async with http_client(settings) as client:
            exit_code = await run(build(settings, client, domain=domain), stop=stop,
                                  sigterm=lambda: signal.SIGTERM in signalled)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    log.info("sidecar_stop", exit_code=exit_code)
    return exit_code


async def run(parts: Parts, *, stop: asyncio.Event, sigterm: Callable[[], bool]) -> int:
    """Serve and run the root tasks until one ends (``stop`` set, a crash); then the
    pod's end: the leave on SIGTERM, the started store stopped, Events drained, all
    within bounded deadlines. The exit code."""
    settings = parts.settings
    runner = web.ServerRunner(make_server(parts.routes), handle_signals=False)
    await runner.setup()
    host, port = settings.listen_address()
    site = web.TCPSite(runner, host, port, backlog=1024, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(f"AGENT_LISTEN (--listen): cannot listen on {host}:{port}: "
                          f"{exc.strerror}") from None
    log.info("sidecar_start", listen=f"{host}:{port}", backend=settings.backend,
             store_url=redact(parts.store_url))
    leave_time_problem = settings.leave_time_problem()
    if leave_time_problem is not None:
        log.warning("grace_period_too_short", problem=leave_time_problem)
    statefulset = settings.statefulset_name()
    if settings.namespace and settings.pod_name and statefulset:
        parts.checks.append(asyncio.create_task(check_update_strategy(parts.kube, statefulset),
                                                name="update_strategy"))
    # Everything allocated so far lives as long as the process: move it out of the
    # collector's reach, so GC passes (which pause probes) stay short.
    gc.collect()
    gc.freeze()
    tasks = [
        asyncio.create_task(guarded("poll_loop", parts.membership.run(stop)), name="poll_loop"),
        asyncio.create_task(guarded("stop_signal", _wait(stop)), name="stop_signal"),
    ]
    if parts.repairer is not None:
        tasks.append(asyncio.create_task(guarded("repair", parts.repairer.run(stop)),
                                         name="repair"))
    start_task = None
    if parts.starter is not None:
        start_task = asyncio.create_task(guarded("store_start", parts.starter.run(stop)),
                                         name="store_start")
        tasks.append(start_task)
    exit_code = 0
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                exit_code = 1
    finally:
        stop.set()
        if not await _end_of_pod(parts, start_task, sigterm=sigterm()):
            exit_code = 1
        try:
            async with asyncio.timeout(settings.shutdown_timeout_seconds):
                await asyncio.gather(*tasks, return_exceptions=True)
                await asyncio.shield(runner.cleanup())
        except TimeoutError:
            log.warning("shutdown_timeout", timeout_s=settings.shutdown_timeout_seconds)
            for task in tasks:
                task.cancel()
    return exit_code


async def _end_of_pod(parts: Parts, start_task: asyncio.Task[None] | None, *,
                      sigterm: bool) -> bool:
    """The leave a classic sidecar's SIGTERM asks for, the started store's stop, the
    Events drained, the start-up checks ended; False when the leave failed."""
    settings = parts.settings
    loop = asyncio.get_running_loop()
    stopping = loop.time()
    ok = True
    if start_task is not None:
        # A start still running as the pod ends would start its store after whatever
        # comes next (the leave's stop, the terminate below) and leave it running: let
        # the attempt end first, within half the grace.
        await asyncio.wait({start_task}, timeout=settings.termination_grace_period_seconds / 2)
    if sigterm:
        # A classic sidecar learns of the pod's end only from SIGTERM: same procedure as
        # POST /leave (and a no-op if that already ran).
        outcome = await parts.leaver.leave(final=True)
        log.info("leave_on_sigterm", **outcome.as_dict())
        ok = outcome.result != "failed"
    if parts.starter is not None:
        # The store the start left running in this container: its clean stop (a
        # restart's; after a leave, the departure stopped it already).
        left = settings.termination_grace_period_seconds - (loop.time() - stopping)
        await parts.starter.terminate(max(1.0, left - 1.0))
    # Events must not eat into the store's own shutdown: half the margin at most.
    drain_seconds = min(settings.kube_timeout_seconds,
                        max(0.5, settings.leave_margin_seconds / 2))
    try:
        async with asyncio.timeout(drain_seconds):
            await parts.leaver.drain()
    except TimeoutError:
        log.warning("events_not_sent", timeout_s=drain_seconds)
    for check in parts.checks:
        check.cancel()
    await asyncio.gather(*parts.checks, return_exceptions=True)
    await parts.kube.aclose()
    return ok


def redact(url: str) -> str:
    """``url`` without any user:password part, for logs and /status."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return url
    return f"{scheme}://***@{rest.split('@', 1)[1]}"


async def _wait(stop: asyncio.Event) -> None:
    await stop.wait()
