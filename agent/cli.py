"""Command line: init, render, peers; maps AgentError subclasses to exit codes."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from agent import __version__
from agent.config import (
    DEFAULT_CLUSTER_DOMAIN,
    Settings,
    cluster_domain_from_resolv_conf,
    env_name,
    fields,
    flag_name,
    host_port,
    load_settings,
    template_vars,
)
from agent.errors import AgentError, ConfigError
from agent.identity import parse_pod_name

if TYPE_CHECKING:
    from agent.discovery import Discovery, Peer, ServiceNames

COMMANDS = {
    "init": "init container: wait for own DNS, discover peers, render config",
    "render": "render templates only (peers from ordinals; no DNS)",
    "peers": "print the peers DNS knows, as JSON",
    "run": "sidecar: readiness/liveness probes, status and metrics from a polled view",
    "status": "print the local sidecar's /status",
    "leave": "preStop hook: ask the local sidecar to leave; exit 0 removed, 3 stayed, 1 failed",
}


def build_parser() -> argparse.ArgumentParser:
    """One subparser per command; every setting is a flag on each."""
    parser = argparse.ArgumentParser(
        prog="sts-agent",
        description="StatefulSet agent for raft stores. Every flag is also an env var.",
    )
    parser.add_argument("--version", action="version", version=f"sts-agent {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command, help_text in COMMANDS.items():
        sub = commands.add_parser(command, help=help_text, description=help_text,
                                  argument_default=argparse.SUPPRESS)
        for name, info in fields().items():
            help_line = f"{info.description} [env {env_name(name)}]"
            if info.annotation is bool:
                sub.add_argument(flag_name(name), dest=name, action=argparse.BooleanOptionalAction,
                                 help=help_line)
            else:
                sub.add_argument(flag_name(name), dest=name, metavar="VALUE", help=help_line)
    return parser


def cluster_domain(settings: Settings) -> str:
    """The configured domain, else the one in resolv.conf's search line, else the default."""
    if settings.cluster_domain:
        return settings.cluster_domain
    try:
        text = settings.resolv_conf_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return DEFAULT_CLUSTER_DOMAIN
    return cluster_domain_from_resolv_conf(text, settings.namespace) or DEFAULT_CLUSTER_DOMAIN


def _names(settings: Settings, domain: str) -> ServiceNames:
    from agent.discovery import ServiceNames

    assert settings.pod_name and settings.service and settings.namespace
    return ServiceNames(
        statefulset=parse_pod_name(settings.pod_name).statefulset,
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


def _render(settings: Settings, names: ServiceNames, peers: Sequence[Peer],
            extra: dict[str, Any] | None = None) -> dict[str, Any]:
    import structlog

    from agent.context import build_context
    from agent.render import Rewrite, render_directory

    assert settings.pod_name and settings.templates_dir and settings.output_dir
    pod = parse_pod_name(settings.pod_name)
    context = build_context(
        names=names,
        pod=pod,
        pod_ip=settings.pod_ip,
        bootstrap_expect=settings.bootstrap_expect,
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


async def _init(settings: Settings, domain: str) -> int:
    import structlog

    from agent.discovery import DnsUnavailable
    from agent.retry import Done, Pending, poll

    log = structlog.get_logger("agent.init")
    started = time.monotonic()
    deadline = started + settings.dns_wait_timeout_seconds
    names = _names(settings, domain)
    discovery = _discovery(settings, names)
    pod = parse_pod_name(settings.pod_name or "")
    log.info("init_start", fqdn=names.pod_fqdn(pod.ordinal), domain=domain,
             bootstrap_expect=settings.bootstrap_expect)
    if settings.wait_for_self:
        assert settings.pod_ip
        await discovery.wait_for_self(pod.ordinal, settings.pod_ip,
                                      timeout_seconds=deadline - time.monotonic())
    if settings.wait_for_peers:
        peers = await discovery.wait_for_peers(settings.bootstrap_expect,
                                               timeout_seconds=deadline - time.monotonic())
    else:
        async def once() -> Done[list[Peer]] | Pending:
            try:
                return Done(await discovery.discover(expected=settings.bootstrap_expect))
            except DnsUnavailable as exc:
                return Pending(exc.message)

        peers = await poll(once, what="peer lookup", timeout_seconds=max(
            0.0, deadline - time.monotonic()))
    log.info("peers_found", peers=[p.fqdn for p in peers])
    extra: dict[str, Any] = {}

    async def rediscover() -> list[Peer]:
        return await discovery.discover(expected=settings.bootstrap_expect)

    if settings.backend in ("etcd", "rqlite"):
        from agent.etcd_prestart import EtcdPrestart
        from agent.rqlite_prestart import RqlitePrestart
        from agent.storeclient import http_client

        prestart = EtcdPrestart if settings.backend == "etcd" else RqlitePrestart
        async with http_client(settings) as client:
            extra = await prestart(settings, names, pod, client).prepare(
                peers, deadline=deadline, rediscover=rediscover)
    if settings.templates_dir is not None:
        _render(settings, names, peers, extra)
    log.info("init_done", took_s=round(time.monotonic() - started, 3))
    return 0


async def _peers(settings: Settings, domain: str) -> int:
    from agent.discovery import DnsUnavailable

    names = _names(settings, domain)
    discovery = _discovery(settings, names)
    try:
        peers = await discovery.discover(expected=settings.bootstrap_expect)
    except DnsUnavailable as exc:
        raise exc
    json.dump([peer.as_dict() for peer in peers], sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def _local_url(settings: Settings) -> str:
    """The sidecar's base URL from this container: wildcard listens mean loopback."""
    host, port = settings.listen_address()
    if host == "0.0.0.0":
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://{host_port(host, port)}"


def _status(settings: Settings) -> int:
    import urllib.error
    import urllib.request

    url = f"{_local_url(settings)}/status"
    try:
        with urllib.request.urlopen(url, timeout=settings.store_timeout_seconds) as response:
            sys.stdout.write(response.read().decode())
    except (urllib.error.URLError, OSError) as exc:
        print(f"sts-agent: cannot read {url}: {exc}", file=sys.stderr)
        return 1
    return 0


def _leave(settings: Settings) -> int:
    import urllib.error
    import urllib.request

    url = f"{_local_url(settings)}/leave"
    headers = {}
    if settings.leave_token_file is not None:
        try:
            token = settings.leave_token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            print(f"sts-agent: cannot read {settings.leave_token_file}: {exc.strerror}",
                  file=sys.stderr)
            return 1
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, method="POST", data=b"", headers=headers)
    timeout = settings.leave_deadline_seconds() + settings.leave_margin_seconds
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read().decode()
    except urllib.error.HTTPError as exc:
        body = exc.read().decode()
    except (urllib.error.URLError, OSError) as exc:
        print(f"sts-agent: cannot reach the sidecar at {url}: {exc}", file=sys.stderr)
        return 1
    print(body)
    try:
        result = json.loads(body).get("result")
    except ValueError:
        return 1
    return {"removed": 0, "stayed": 3}.get(result, 1)


def _print_problems(error: AgentError) -> None:
    kind = type(error).__name__
    if error.problems:
        print(f"sts-agent: {kind}: {error.message}", file=sys.stderr)
    for line in error.lines():
        print(f"sts-agent: {line}" if error.problems else f"sts-agent: {kind}: {line}",
              file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit code (see agent.errors for the table)."""
    args = vars(build_parser().parse_args(argv))
    command = args.pop("command")
    try:
        settings = load_settings(command, args, os.environ)
    except ConfigError as exc:
        _print_problems(exc)
        return exc.exit_code

    from agent import log

    log.configure(level=settings.log_level, fmt=settings.log_format, pod=settings.pod_name,
                  namespace=settings.namespace)
    domain = cluster_domain(settings)
    try:
        if command == "render":
            _render(settings, _names(settings, domain), [])
            return 0
        if command == "init":
            return asyncio.run(_init(settings, domain))
        if command == "peers":
            return asyncio.run(_peers(settings, domain))
        if command == "run":
            from agent.lifecycle import run_sidecar

            return asyncio.run(run_sidecar(settings, domain=domain))
        if command == "status":
            return _status(settings)
        if command == "leave":
            return _leave(settings)
    except AgentError as exc:
        import structlog

        structlog.get_logger("agent.cli").error(
            "failed", command=command, error=type(exc).__name__, message=exc.message,
            problems=exc.problems, exit_code=exc.exit_code,
        )
        _print_problems(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    raise AssertionError(f"unhandled command {command}")
