"""The exec backend: status with its failure threshold, the members hook, peers' views."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import respx

from agent.errors import BackendError, BackendUnavailable
from agent.storekit.capabilities import Departing, Reconfigurable
from agent.stores.exec.api import ExecBackend
from agent.stores.exec.contract import Role
from tests.unit.stores.exec.answers import MEMBERS
from tests.unit.stores.exec.fakes import hooks, settings


def codes(tmp_path: Path, *sequence: int) -> str:
    """A status hook exiting with each of ``sequence`` in turn (the last one after)."""
    (tmp_path / "codes").write_text("\n".join(map(str, sequence)) + "\n")
    return (f'code=$(head -n1 {tmp_path}/codes); rest=$(tail -n +2 {tmp_path}/codes); '
            f'[ -n "$rest" ] && printf "%s\\n" "$rest" > {tmp_path}/codes; '
            'echo "said $code" >&2; exit $code')


def backend(tmp_path: Path, **bodies: str) -> ExecBackend:
    given = settings(tmp_path, exec_hooks=hooks(tmp_path, **bodies))
    return ExecBackend(httpx.AsyncClient(), "http://127.0.0.1:9090", settings=given)


async def test_one_transient_failure_changes_nothing(tmp_path: Path) -> None:
    exec_ = backend(tmp_path, status=codes(tmp_path, 8, 1, 2, 8))
    views = [await exec_.view() for _ in range(4)]
    assert [dict(v.details)["role"] for v in views] == ["primary"] * 4
    assert [dict(v.checks)["exec_status"] for v in views] == [None] * 4
    assert [dict(v.details)["status_failures"] for v in views] == [0, 1, 2, 0]


async def test_failures_past_the_threshold_fail_readiness_naming_the_hook(tmp_path: Path) -> None:
    exec_ = backend(tmp_path, status=codes(tmp_path, 8, 1, 1, 1))
    views = [await exec_.view() for _ in range(4)]
    assert dict(views[2].details)["role"] == "primary"
    why = dict(views[3].checks)["exec_status"]
    assert why is not None and "status hook" in why and "exited 1: said 1" in why
    assert exec_.role is Role.FAILED


async def test_stopped_is_an_answer_not_a_failure(tmp_path: Path) -> None:
    exec_ = backend(tmp_path, status=codes(tmp_path, 8, 7))
    await exec_.view()
    view = await exec_.view()
    assert dict(view.checks)["exec_status"] == "store stopped (status hook exited 7)"


async def test_a_hung_status_is_a_failure_like_any_other(tmp_path: Path) -> None:
    exec_ = backend(tmp_path, status="sleep 30")
    exec_.hooks.hooks = exec_.hooks.hooks.model_copy(update={
        "status": exec_.hooks.hooks.status.model_copy(update={"timeout": 0.2})})
    for _ in range(3):
        view = await exec_.view()
    why = dict(view.checks)["exec_status"]
    assert why is not None and "timed out after 0.2 s" in why


async def test_the_members_hook_gives_membership(tmp_path: Path) -> None:
    exec_ = backend(tmp_path, members=f"cat <<'EOF'\n{json.dumps(MEMBERS)}\nEOF")
    view = await exec_.view()
    assert view.self_id == "91bc3c398fb3c146" and len(view.members) == 3
    assert dict(view.checks)["exec_status"] is None


@pytest.mark.parametrize(("body", "error"), [("echo nope", BackendError),
                                             ("exit 4", BackendUnavailable)])
async def test_a_members_hook_failing_or_printing_garbage_is_named(
        tmp_path: Path, body: str, error: type[Exception]) -> None:
    exec_ = backend(tmp_path, members=body)
    with pytest.raises(error, match="members hook"):
        await exec_.view()


@respx.mock
async def test_a_peer_s_view_comes_from_its_agent(tmp_path: Path) -> None:
    exec_ = backend(tmp_path)
    own = await exec_.view()
    respx.get("http://10.0.0.1:9090/status").respond(json={"view": {"local": own.as_dict()}})
    respx.get("http://10.0.0.2:9090/status").respond(503)
    respx.get("http://10.0.0.3:9090/status").respond(text="<html>")
    assert (await exec_.view("http://10.0.0.1:9090")).self_id == own.self_id
    with pytest.raises(BackendUnavailable, match="answered 503"):
        await exec_.view("http://10.0.0.2:9090")
    with pytest.raises(BackendError, match="no JSON"):
        await exec_.view("http://10.0.0.3:9090")


def test_no_member_removes_another(tmp_path: Path) -> None:
    """An exec member leaves by its stop hook: the backend departs, it is not
    reconfigured through a leader (the repair leaves it alone)."""
    exec_ = backend(tmp_path)
    assert isinstance(exec_, Departing) and not isinstance(exec_, Reconfigurable)
