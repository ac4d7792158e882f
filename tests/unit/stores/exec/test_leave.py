"""The exec store's departure: higher departing pods first, stop until it succeeds, stopped."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import respx

from agent.leave import Leaver
from agent.membership import Membership
from agent.model import ClusterView, Member
from agent.readiness import Policy
from agent.stores.exec.api import ExecBackend
from agent.stores.exec.leave import ExecDeparture
from tests.unit.stores.exec.fakes import hooks, settings
from tests.unit.test_leave import FakeReplicas, Recorder


async def tick(seconds: float) -> None:
    await asyncio.sleep(0)


def leaver(tmp_path: Path, *, me: int, replicas: int, present: set[int] | None = None,
           stop: str = "", events: Recorder | None = None,
           deadline: float = 10) -> tuple[Leaver, Path]:
    """Pod ``me`` of pods ``present`` (0-4); stop logs to ``calls`` and then status says
    stopped (7)."""
    calls = tmp_path / "calls"
    stopped = tmp_path / "stopped"
    bodies = {"stop": f"echo stop >> {calls}; {stop} touch {stopped}",
              "status": f"[ -e {stopped} ] && exit 7; exit 8"}
    given = settings(tmp_path, pod=f"exec-{me}", exec_hooks=hooks(tmp_path, **bodies))
    backend = ExecBackend(httpx.AsyncClient(), "http://127.0.0.1:9090", settings=given)
    membership = Membership(backend, policy=Policy(), poll_interval_seconds=1,
                            poll_timeout_seconds=5)
    there = set(range(5)) if present is None else present

    async def pod_exists(ordinal: int) -> bool | None:
        return ordinal in there

    async def peer_url(ordinal: int) -> str | None:
        return f"http://10.0.0.{ordinal}:9090"

    departure = ExecDeparture(backend, pod_exists=pod_exists, peer_url=peer_url)
    return Leaver(membership, departure, policy="scale-down", ordinal=me, statefulset="exec",
                  replicas=FakeReplicas(replicas), events=events, deadline_seconds=deadline,
                  sleep=tick), calls


def peer_status(ordinal: int, role: str) -> dict[str, object]:
    view = ClusterView(members=(Member(f"exec-{ordinal}", f"exec-{ordinal}", "x"),),
                       leader_id=None, self_id=f"exec-{ordinal}", details=(("role", role),))
    return {"view": {"local": view.as_dict()}}


async def test_a_restart_runs_nothing(tmp_path: Path) -> None:
    leave, calls = leaver(tmp_path, me=2, replicas=3)
    outcome = await leave.leave()
    assert outcome.result == "stayed" and not calls.exists()


@respx.mock
async def test_scale_down_stops_the_node_once_the_pod_above_has_stopped(tmp_path: Path) -> None:
    above = respx.get("http://10.0.0.4:9090/status")
    above.side_effect = [httpx.Response(200, json=peer_status(4, "primary"))] * 3 + [
        httpx.Response(200, json=peer_status(4, "stopped"))]
    events = Recorder()
    leave, calls = leaver(tmp_path, me=3, replicas=3, present={0, 1, 2, 3, 4}, events=events)
    outcome = await leave.leave()
    await leave.drain()
    assert outcome.result == "removed", outcome.reason
    assert "status says stopped" in outcome.reason
    assert above.call_count == 4 and calls.read_text().split() == ["stop"]
    assert events.events == [("MemberStopped", False)]


async def test_a_failing_stop_is_run_again_and_named(tmp_path: Path) -> None:
    tries = tmp_path / "tries"
    leave, calls = leaver(tmp_path, me=4, replicas=3, present={0, 1, 2, 3, 4},
                          stop=f'echo x >> {tries}; [ $(wc -l < {tries}) -ge 3 ] || '
                               '{ echo "still syncing" >&2; exit 1; };')
    outcome = await leave.leave()
    assert outcome.result == "removed" and calls.read_text().split() == ["stop"] * 3


async def test_a_stop_that_never_succeeds_fails_the_leave_naming_the_hook(tmp_path: Path) -> None:
    leave, _ = leaver(tmp_path, me=4, replicas=3, stop='echo "disk full" >&2; exit 1;',
                      deadline=0.5)
    leave.sleep = asyncio.sleep
    leave.retry_seconds = 0.05
    outcome = await leave.leave()
    assert outcome.result == "failed"
    assert "stop hook" in outcome.reason and "disk full" in outcome.reason
