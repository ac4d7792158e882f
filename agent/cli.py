"""Command line: argv to a command, settings loaded; our errors mapped to exit codes."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from agent import __version__
from agent.config.loading import env_name, fields, flag_name, load_settings
from agent.errors import AgentError, ConfigError
from agent.resolvconf import cluster_domain

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
    domain = cluster_domain(settings.cluster_domain, settings.resolv_conf_path,
                            settings.namespace)
    try:
        if command in ("init", "render", "peers"):
            from agent import init_container

            if command == "render":
                init_container.render(settings, init_container.service_names(settings, domain),
                                      [])
                return 0
            run = init_container.run_init if command == "init" else init_container.print_peers
            return asyncio.run(run(settings, domain))
        if command == "run":
            from agent.sidecar import run_sidecar

            return asyncio.run(run_sidecar(settings, domain=domain))
        if command in ("status", "leave"):
            from agent import ask

            return ask.status(settings) if command == "status" else ask.leave(settings)
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
