"""The exec store's start, in the sidecar: init's plan (seed or join) carried out by its hooks."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import structlog

from agent.leave import Events
from agent.stores.exec.api import ExecBackend, peer_roles
from agent.stores.exec.contract import Role, role_of
from agent.stores.exec.plan import take_plan

log = structlog.get_logger("agent.exec")

# Primaries running now, as their hosts (primaries_among the peers' agents).
FindPrimaries = Callable[[], Awaitable[list[str]]]


class ExecStarter:
    """Starts this node once, as init's plan says: ``seed``, or ``primary``/``secondary``
    with the current primaries appended (RSS's arguments). A failed start hook is run
    again (a join with the primaries found then) until ``status`` says the node runs.

    Without a fresh plan (the container restarted; init did not run) the node only ever
    joins running primaries: seeding needs init's vote, and a stale one could start a
    second history. A node already running is left alone, unless it is stuck: its
    ``status`` has answered failed for ``restart_failed_seconds`` while another pod runs
    as primary. Then ``stop`` stops it and it joins again (nothing committed can be lost:
    the cluster it rejoins runs without it); with no primary elsewhere it is left alone."""

    def __init__(self, backend: ExecBackend, plan_dir: Path | None, *,
                 find_primaries: FindPrimaries, leaving: Callable[[], bool],
                 retry_seconds: float = 2.0, restart_failed_seconds: float = 0.0,
                 events: Events | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.backend = backend
        self.plan_dir = plan_dir
        self.find_primaries = find_primaries
        self.leaving = leaving
        self.retry_seconds = retry_seconds
        self.restart_failed_seconds = restart_failed_seconds
        self.events = events
        self.sleep = sleep
        self.restarts = 0
        self._announced: float | None = None  # the failed streak an Event was sent for
        self.plan: dict[str, Any] | None = None
        self.state = "pending"  # pending, starting, waiting, running, restarting, held
        self.reason = "not started yet"
        self.started_pid: int | None = None  # the start hook's process group

    def as_dict(self) -> dict[str, Any]:
        return {"state": self.state, "reason": self.reason, "plan": self.plan,
                "process_group": self.started_pid, "restarts": self.restarts}

    def _say(self, state: str, reason: str) -> None:
        if (state, reason) != (self.state, self.reason):
            log.info("exec_start", state=state, reason=reason)
        self.state, self.reason = state, reason

    async def run(self, stop: asyncio.Event) -> None:
        """Start the node, then watch it: one that stops by itself (not by the leave) is
        joined to the running primaries again (never seeded), as RSS restarts it."""
        fresh = None
        if self.plan_dir is not None:
            fresh = take_plan(self.plan_dir)
        self.plan = fresh
        while not stop.is_set():
            if self.leaving():
                self._say("held", "leaving: the node is not started again")
            elif await self.attempt(fresh):
                fresh = None  # a later start only joins
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.retry_seconds):
                    await stop.wait()

    async def _role(self) -> Role:
        """What ``status`` says now (not the counted role: a start looks once)."""
        hooks = self.backend.hooks
        return role_of(await hooks.run("status", hooks.hooks.status))

    async def attempt(self, plan: dict[str, Any] | None) -> bool:
        """One look, and a start when the node does not run; whether it runs."""
        if self.state == "running" and self.backend.role is not Role.STOPPED:
            # The poll loop's counted word: still running, or failing.
            if self.backend.role is not Role.FAILED or not await self._stopped_stuck():
                return True
        role = await self._role()
        if role is not Role.STOPPED:
            self._say("running", f"status says {role}")
            return True
        hooks = self.backend.hooks
        if plan is not None and plan.get("role") == "seed":
            name, args = "seed", []
            reason = f"init's vote: {plan.get('reason')}"
        else:
            primaries = await self.find_primaries()
            if not primaries:
                self._say("waiting", "no primary running to join; seeding needs init's vote "
                                     "(after a restart of this container the node never "
                                     "seeds: delete the pod to run init again)")
                return False
            name = str(plan.get("role")) if plan is not None and plan.get("role") in (
                "primary", "secondary") else "primary"
            args = primaries
            reason = f"joining {', '.join(primaries)}"
        self._say("starting", f"{name} hook: {reason}")
        result = await hooks.run(name, hooks.hooks.start_hook(name), args)
        if result.pid is not None:
            self.started_pid = result.pid
        if not result.ok:
            self._say("waiting", f"{result.why()}; trying again in {self.retry_seconds:g} s")
            return False
        self.backend.start_succeeded()
        self._say("running", f"{name} hook succeeded ({reason})")
        return True

    async def _stopped_stuck(self) -> bool:
        """Stop a node whose ``status`` has answered failed for too long while another
        pod runs as primary (by ``stop``, the primaries appended); whether it stopped."""
        since = self.backend.failed_since
        if self.restart_failed_seconds <= 0 or since is None:
            return False
        failed_for = self.backend.clock() - since
        if failed_for < self.restart_failed_seconds:
            return False
        last = self.backend.last_status
        said = last.why() if last is not None else "status failed"
        hooks = self.backend.hooks
        if hooks.hooks.stop is None:  # known without asking the peers
            self._say("running", f"status has answered failed for {failed_for:.0f} s "
                                 f"({said}); not restarted: no stop hook")
            return False
        primaries = await self.find_primaries()
        if not primaries:
            self._say("running", f"status has answered failed for {failed_for:.0f} s "
                                 f"({said}); not restarted: no other pod runs as primary")
            return False
        reason = (f"status has answered failed for {failed_for:.0f} s ({said}) while "
                  f"{', '.join(primaries)} run as primary: stopping the node to join again")
        self._say("restarting", reason)
        if self._announced != since:
            self._announced = since
            log.warning("exec_member_restart", failed_seconds=round(failed_for, 1),
                        primaries=primaries, said=said)
            if self.events is not None:
                await self.events.event(reason="ExecMemberRestarted", message=reason,
                                        warning=True)
        result = await hooks.run("stop", hooks.hooks.stop, primaries)
        if not result.ok:
            self._say("running", f"the restart's stop failed: {result.why()}; "
                                 f"trying again in {self.retry_seconds:g} s")
            return False
        self.restarts += 1
        self.backend.forget_failures()
        return True

    async def terminate(self, timeout_seconds: float) -> bool:
        """SIGTERM to the process group the start hook left running (the store, when it
        runs in this container), then wait for it to be gone. Whether it is."""
        pgid = self.started_pid
        if pgid is None:
            return True
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            return True
        except PermissionError as exc:
            log.warning("store_not_signalled", process_group=pgid, error=str(exc))
            return False
        log.info("store_terminating", process_group=pgid)
        end = time.monotonic() + timeout_seconds
        while time.monotonic() < end:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                log.info("store_terminated", process_group=pgid)
                return True
            await self.sleep(0.1)
        log.warning("store_still_running", process_group=pgid, timeout_s=timeout_seconds)
        return False


async def primaries_among(client: httpx.AsyncClient, urls: Sequence[str]) -> list[str]:
    """The hosts of the agents at ``urls`` whose nodes run as primary (their /status)."""
    roles = await peer_roles(client, urls)
    return [str(httpx.URL(url).host) for url, role in zip(urls, roles, strict=True)
            if role is Role.PRIMARY]
