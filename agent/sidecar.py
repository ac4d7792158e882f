"""The sidecar's composition root: signals set an event, guarded root tasks, bounded shutdown."""

from __future__ import annotations

import asyncio
import gc
import signal
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import structlog
from aiohttp import web

from agent.config.settings import Settings
from agent.errors import ConfigError, KubeError
from agent.identity import parse_pod_name
from agent.kube import Kube
from agent.leave import Leaver
from agent.membership import Membership
from agent.metrics import Metrics
from agent.model import Snapshot
from agent.promote import Promoter
from agent.quorum import update_strategy_problem
from agent.readiness import Policy
from agent.repair import Repairer
from agent.server import Routes, make_server
from agent.storeclient import http_client
from agent.storekit.capabilities import Mendable, Promotable

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
        replicas, max_unavailable = await kube.rolling_update(statefulset)
    except KubeError as exc:
        log.info("update_strategy_unread", statefulset=statefulset, error=exc.message)
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
    if not (settings.pod_name and settings.service and settings.namespace and domain and port):
        return []
    pod = parse_pod_name(settings.pod_name)
    bootstrap = settings.bootstrap_ordinals()
    ordinals = range(bootstrap.start, max(bootstrap.stop, pod.ordinal + 1))
    scheme = spec.url_scheme if (spec := settings.store()) is not None else "http"
    return [
        f"{scheme}://{pod.statefulset}-{o}.{settings.service}.{settings.namespace}.svc.{domain}"
        f":{port}"
        for o in ordinals if o != pod.ordinal
    ]


async def run_sidecar(settings: Settings, *, stop: asyncio.Event | None = None,
                      domain: str | None = None) -> int:
    """Serve probes and poll the store until SIGTERM/SIGINT (or ``stop``)."""
    spec = settings.store()
    assert spec is not None
    stop = stop or asyncio.Event()
    signalled: list[int] = []

    def on_signal(signum: int) -> None:
        signalled.append(signum)
        stop.set()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    cls = spec.backend_class()
    store_url = settings.store_url or spec.default_url
    metrics = Metrics()
    async with http_client(settings) as client:
        backend = cls(client, store_url, peer_api_port=settings.client_port,
                      settings=settings)
        after_poll: list[Callable[[Snapshot], Awaitable[None]]] = []
        if settings.promote_learner and isinstance(backend, Promotable):
            after_poll.append(Promoter(backend, max_lag_entries=settings.max_lag_entries
                                       ).on_poll)
        if isinstance(backend, Mendable):
            mendable = backend

            async def mend(snapshot: Snapshot) -> None:
                await mendable.mend()

            after_poll.append(mend)

        async def on_poll(snapshot: Snapshot) -> None:
            for step in after_poll:
                await step(snapshot)
        request_timeout = settings.store_timeout_seconds
        hooks = settings.exec_hooks
        if spec.scheme == "hooks" and hooks is not None:
            # This node's view is its status (and members) hooks' run: their timeouts.
            request_timeout = max(request_timeout, hooks.status.timeout + 1.0
                                  + (hooks.members.timeout if hooks.members else 0.0))
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
            on_poll=on_poll if after_poll else None,
        )
        kube = Kube(settings)
        leave_time_problem = settings.leave_time_problem()
        leave_args: dict[str, Any] = {
            "policy": settings.leave_policy,
            "ordinal": parse_pod_name(settings.pod_name).ordinal if settings.pod_name else None,
            "statefulset": settings.statefulset_name(),
            "replicas": kube if settings.namespace else None,
            "events": kube if settings.namespace and settings.pod_name else None,
            "deadline_seconds": settings.leave_deadline_seconds(),
            "deadline_problem": leave_time_problem,
        }
        starter = None
        parts: dict[str, Any] = {}
        leaver: Leaver
        if spec.scheme == "hooks":  # exec: started by its hooks, leaves by its stop hook
            from agent.exec_sidecar import exec_parts
            from agent.stores.exec.api import ExecBackend

            assert isinstance(backend, ExecBackend)
            leaver, starter = exec_parts(settings, backend, membership, client=client,
                                         kube=kube, metrics=metrics, domain=domain,
                                         leave_args=leave_args)
            parts = {"exec_start": starter, "exec_hooks": backend.hooks}
        elif not spec.raft:  # Galera: a member leaves by its own clean stop
            from agent.galera_leave import GaleraLeaver

            leaver = GaleraLeaver(membership, backend, **leave_args)
        else:
            leaver = Leaver(membership, backend, **leave_args)
        repairer = None
        if settings.repair and spec.raft and settings.namespace and settings.statefulset_name():
            repairer = Repairer(membership, backend, pods=kube,
                                events=kube if settings.pod_name else None,
                                statefulset=settings.statefulset_name() or "",
                                after_seconds=settings.repair_after_seconds,
                                interval_seconds=settings.repair_interval_seconds,
                                metrics=metrics)
        routes = Routes(membership, liveness_timeout_seconds=settings.liveness_timeout_seconds,
                        info={"backend": settings.backend, "store_url": redact(store_url),
                              "pod": settings.pod_name, "namespace": settings.namespace,
                              "leave_policy": settings.leave_policy},
                        leaver=leaver, leave_token_file=settings.leave_token_file,
                        native_sidecar=settings.native_sidecar,
                        repair=repairer.state if repairer is not None else None,
                        parts=parts)
        runner = web.ServerRunner(make_server(routes), handle_signals=False)
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
                 store_url=redact(store_url))
        if leave_time_problem is not None:
            log.warning("grace_period_too_short", problem=leave_time_problem)
        statefulset = settings.statefulset_name()
        checks = []
        if settings.namespace and settings.pod_name and statefulset:
            checks.append(asyncio.create_task(check_update_strategy(kube, statefulset),
                                              name="update_strategy"))
        # Everything allocated so far lives as long as the process: move it out of the
        # collector's reach, so GC passes (which pause probes) stay short.
        gc.collect()
        gc.freeze()
        tasks = [
            asyncio.create_task(guarded("poll_loop", membership.run(stop)), name="poll_loop"),
            asyncio.create_task(guarded("stop_signal", _wait(stop)), name="stop_signal"),
        ]
        if repairer is not None:
            tasks.append(asyncio.create_task(guarded("repair", repairer.run(stop)),
                                             name="repair"))
        start_task = None
        if starter is not None:
            start_task = asyncio.create_task(guarded("exec_start", starter.run(stop)),
                                             name="exec_start")
            tasks.append(start_task)
        exit_code = 0
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    exit_code = 1
        finally:
            stop.set()
            stopping = loop.time()
            if start_task is not None:
                # A start hook still running as the pod ends would start its store after
                # whatever comes next (the leave's stop hook, the terminate below) and
                # leave it running: let the attempt end first, within half the grace.
                await asyncio.wait(
                    {start_task}, timeout=settings.termination_grace_period_seconds / 2)
            if signalled and signal.SIGTERM in signalled:
                # A classic sidecar learns of the pod's end only from SIGTERM: same
                # procedure as POST /leave (and a no-op if that already ran).
                outcome = await leaver.leave(final=True)
                log.info("leave_on_sigterm", **outcome.as_dict())
                if outcome.result == "failed":
                    exit_code = 1
            if starter is not None:
                # The store the start hook left running in this container: its clean
                # stop (a restart's; after a leave, the stop hook already ran).
                left = settings.termination_grace_period_seconds - (loop.time() - stopping)
                await starter.terminate(max(1.0, left - 1.0))
            # Events must not eat into the store's own shutdown: half the margin at most.
            drain_seconds = min(settings.kube_timeout_seconds,
                                max(0.5, settings.leave_margin_seconds / 2))
            try:
                async with asyncio.timeout(drain_seconds):
                    await leaver.drain()
            except TimeoutError:
                log.warning("events_not_sent", timeout_s=drain_seconds)
            for check in checks:
                check.cancel()
            await asyncio.gather(*checks, return_exceptions=True)
            await kube.aclose()
            try:
                async with asyncio.timeout(settings.shutdown_timeout_seconds):
                    await asyncio.gather(*tasks, return_exceptions=True)
                    await asyncio.shield(runner.cleanup())
            except TimeoutError:
                log.warning("shutdown_timeout", timeout_s=settings.shutdown_timeout_seconds)
                for task in tasks:
                    task.cancel()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
    log.info("sidecar_stop", exit_code=exit_code)
    return exit_code


def redact(url: str) -> str:
    """``url`` without any user:password part, for logs and /status."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return url
    return f"{scheme}://***@{rest.split('@', 1)[1]}"


async def _wait(stop: asyncio.Event) -> None:
    await stop.wait()

