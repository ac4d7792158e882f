"""Init's composition root: own DNS, peers, the store's pre-start work, then the config files.

Also ``render`` (templates only, peers from ordinals) and ``peers`` (what DNS knows), which
share its parts. Imports stay lazy: an init container never loads lightkube or
prometheus-client, and a store without pre-start work never loads httpx or aiohttp (a store
with some serves GET /init while it runs, for its peers' bootstrap decision).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import structlog

from agent.config.settings import Settings

if TYPE_CHECKING:
    from agent.discovery import Discovery, Peer, ServiceNames

log = structlog.get_logger("agent.init")


def service_names(settings: Settings, domain: str) -> ServiceNames:
    """This StatefulSet's DNS names behind its headless Service."""
    from agent.discovery import ServiceNames

    assert settings.pod is not None and settings.service and settings.namespace
    return ServiceNames(
        statefulset=settings.pod.statefulset,
        service=settings.service,
        namespace=settings.namespace,
        domain=domain,
        srv_port_name=settings.srv_port_name,
    )


def _discovery(settings: Settings, names: ServiceNames) -> Discovery:
    from agent.discovery import Discovery
    from agent.dnsclient import DnspythonClient

    client = DnspythonClient(settings.nameserver(),
                             timeout_seconds=settings.dns_query_timeout_seconds)
    return Discovery(client, names)


def render(settings: Settings, names: ServiceNames, peers: Sequence[Peer],
           extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Render the templates for this pod; the variables they saw."""
    from agent.context import build_context, template_vars
    from agent.render import Rewrite, render_directory

    assert settings.pod is not None and settings.templates_dir and settings.output_dir
    pod = settings.pod
    context = build_context(
        names=names,
        pod=pod,
        pod_ip=settings.pod_ip,
        bootstrap=settings.bootstrap_ordinals(),
        peer_port=settings.effective_peer_port(),
        discovered=peers,
        template_vars=template_vars(os.environ),
    )
    context.update(extra or {})
    rewrite = None
    if settings.namespace_rewrite:
        rewrite = Rewrite(source=settings.namespace_rewrite, namespace=names.namespace,
                          domain=names.domain)
    result = render_directory(settings.templates_dir, settings.output_dir, context,
                              suffix=settings.template_suffix, rewrite=rewrite)
    structlog.get_logger("agent.render").info(
        "rendered", output_dir=str(settings.output_dir), written=result.written,
        unchanged=result.unchanged, peers=context["peers"],
    )
    return context


async def discover(discovery: Discovery, settings: Settings) -> list[Peer]:
    """One round of peer lookups from the StatefulSet's first ordinal, at least the
    bootstrap set."""
    bootstrap = settings.bootstrap_ordinals()
    return await discovery.discover(expected=len(bootstrap), start=bootstrap.start)


async def run_init(settings: Settings, domain: str) -> int:
    """``sts-agent init``: wait for own DNS, find peers, pre-start work, render."""
    from agent.discovery import DnsUnavailable
    from agent.retry import Done, Pending, poll

    started = time.monotonic()
    deadline = started + settings.dns_wait_timeout_seconds
    names = service_names(settings, domain)
    discovery = _discovery(settings, names)
    pod = settings.pod
    assert pod is not None  # POD_NAME is required by init
    log.info("init_start", fqdn=names.pod_fqdn(pod.ordinal), domain=domain,
             bootstrap_expect=settings.bootstrap_expect)
    if settings.wait_for_self:
        assert settings.pod_ip
        await discovery.wait_for_self(pod.ordinal, settings.pod_ip,
                                      timeout_seconds=deadline - time.monotonic())
    if settings.wait_for_peers:
        peers = await discovery.wait_for_peers(settings.bootstrap_ordinals(),
                                               timeout_seconds=deadline - time.monotonic())
    else:
        async def once() -> Done[list[Peer]] | Pending:
            try:
                return Done(await discover(discovery, settings))
            except DnsUnavailable as exc:
                return Pending(exc.message)

        peers = await poll(once, what="peer lookup", timeout_seconds=max(
            0.0, deadline - time.monotonic()))
    log.info("peers_found", peers=[p.fqdn for p in peers])
    extra: dict[str, Any] = {}

    async def rediscover() -> list[Peer]:
        """The peers DNS knows now; a DNS answer missed while init waits keeps the peers
        found before (init would otherwise exit and restart, forgetting which peers
        have said they hold no raft state)."""
        nonlocal peers
        try:
            peers = await discover(discovery, settings)
        except DnsUnavailable as exc:
            log.warning("rediscover_failed", error=exc.message, kept=[p.fqdn for p in peers])
        return peers

    spec = settings.store()
    prestart = spec.prestart_class() if spec is not None else None
    if prestart is not None and prestart.reads_config and settings.templates_dir is not None:
        # The pre-start work reads the rendered config (an exec store's sequence hook),
        # so it is there first (rendered again after, with the plan).
        render(settings, names, peers)
    if spec is not None and prestart is not None:
        from agent.server import init_state_server
        from agent.storeclient import http_client

        async with http_client(settings) as client:
            work = prestart(settings, names, pod, client)
            has_state = work.has_state()
            host, port = settings.listen_address()

            def document() -> dict[str, Any]:
                return {"pod": pod.name, "store": spec.name, **work.init_document()}

            async with init_state_server(host, port, document, work.peer_asked):
                log.info("init_serving", listen=f"{host}:{port}", has_state=has_state)
                extra = await work.prepare(peers, deadline=deadline, rediscover=rediscover)
    if settings.templates_dir is not None:
        render(settings, names, peers, extra)
    log.info("init_done", took_s=round(time.monotonic() - started, 3))
    return 0


async def print_peers(settings: Settings, domain: str) -> int:
    """``sts-agent peers``: the pods DNS knows, as JSON on stdout."""
    discovery = _discovery(settings, service_names(settings, domain))
    peers = await discover(discovery, settings)
    json.dump([peer.as_dict() for peer in peers], sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0
