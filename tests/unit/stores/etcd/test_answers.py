"""The etcd backend on every answer captured from etcd 3.4, 3.5 and 3.6 (answers/*.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from agent.errors import BackendError, BackendUnavailable
from agent.stores.etcd.api import EtcdBackend, build_view, parse_members, parse_status

ANSWERS = Path(__file__).with_name("answers")
VERSIONS = sorted(path.stem for path in ANSWERS.glob("*.json"))
URL = "http://127.0.20.1:2379"


def test_every_played_version_has_its_answers() -> None:
    from player.stores.etcd import VERSIONS as PLAYED

    assert VERSIONS == sorted(PLAYED)


@pytest.fixture(params=VERSIONS)
def version(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def answers(version: str) -> dict[str, Any]:
    document = json.loads((ANSWERS / f"{version}.json").read_text())
    assert document["etcd"] == version
    found: dict[str, Any] = document["answers"]
    return found


def body(answers: dict[str, Any], name: str) -> Any:
    return answers[name]["body"]


def respond(route: respx.Route, answer: dict[str, Any]) -> None:
    route.respond(answer["status"], json=answer["body"])


def test_member_list_with_an_unstarted_learner(answers: dict[str, Any]) -> None:
    responder, members = parse_members(body(answers, "voter_member_list"))
    assert responder == body(answers, "voter_status")["header"]["member_id"]
    voters = [m for m in members if m.voter]
    learner = next(m for m in members if not m.voter)
    assert sorted(m.name for m in voters) == ["etcd-0", "etcd-1", "etcd-2"]
    assert all(m.api_url and m.address for m in voters)
    # Added, never started: no name and no client URL yet.
    assert learner.name == "" and learner.api_url is None
    assert learner.address == "http://127.0.20.4:2380"
    assert learner.id == body(answers, "learner_added")["member"]["ID"]


def test_status_of_leader_follower_and_learner(version: str, answers: dict[str, Any]) -> None:
    leader = body(answers, "leader_status")
    for name in ("leader_status", "voter_status", "learner_status"):
        status = parse_status(body(answers, name))
        assert status["leader_id"] == leader["header"]["member_id"], name
        assert status["applied_index"] is not None and status["applied_index"] > 0, name
        assert status["commit_index"] >= status["applied_index"], name
        assert status["version"] and status["version"].startswith(f"{version}."), name
        assert status["errors"] == [], name


def test_view_of_a_follower(answers: dict[str, Any]) -> None:
    view = build_view(body(answers, "voter_member_list"), body(answers, "voter_status"))
    assert view.self_id == body(answers, "voter_status")["header"]["member_id"]
    assert view.leader is not None and view.leader.id == view.leader_id
    assert view.self_id is not None and view.member(view.self_id) is not None
    assert view.notes == ()


@respx.mock
async def test_view_of_a_learner_that_refuses_member_list(answers: dict[str, Any]) -> None:
    respond(respx.post(f"{URL}/v3/cluster/member/list"), answers["learner_member_list"])
    respond(respx.post(f"{URL}/v3/maintenance/status"), answers["learner_status"])
    async with httpx.AsyncClient() as client:
        view = await EtcdBackend(client, URL).view()
    learner_id = body(answers, "learner_added")["member"]["ID"]
    assert view.members == () and view.self_id == learner_id
    assert view.leader_id == body(answers, "leader_status")["header"]["member_id"]


@respx.mock
async def test_a_voter_refusing_member_list_stays_an_error(answers: dict[str, Any]) -> None:
    """The learner's refusal, answered by a member whose status says voter."""
    respond(respx.post(f"{URL}/v3/cluster/member/list"), answers["learner_member_list"])
    respond(respx.post(f"{URL}/v3/maintenance/status"), answers["voter_status"])
    async with httpx.AsyncClient() as client:
        with pytest.raises((BackendError, BackendUnavailable), match=r"HTTP (400|503)"):
            await EtcdBackend(client, URL).view()


@respx.mock
async def test_adding_a_learner(answers: dict[str, Any]) -> None:
    add = respx.post(f"{URL}/v3/cluster/member/add")
    respond(add, answers["learner_added"])
    respond(respx.post(f"{URL}/v3/cluster/member/list"), answers["voter_member_list"])
    async with httpx.AsyncClient() as client:
        backend = EtcdBackend(client, URL)
        added = await backend.add_learner("http://127.0.20.4:2380", via=URL)
        assert added.id == body(answers, "learner_added")["member"]["ID"] and not added.voter
        # A retried add finds the member the first attempt made.
        respond(add, answers["duplicate_peer_url"])
        again = await backend.add_learner("http://127.0.20.4:2380", via=URL)
        assert again.id == added.id
        # etcd says it either way, by timing: for the id derived from the URL, or the URL.
        refusal = answers["duplicate_peer_url"]
        add.respond(refusal["status"], json={
            **refusal["body"], "message": "etcdserver: Peer URLs already exists"})
        assert (await backend.add_learner("http://127.0.20.4:2380", via=URL)).id == added.id
        # etcd allows one learner at a time: retryable, said as etcd says it.
        respond(add, answers["second_learner_refused"])
        with pytest.raises(BackendUnavailable, match="too many learner members"):
            await backend.add_learner("http://127.0.20.5:2380", via=URL)


@respx.mock
async def test_promoting(answers: dict[str, Any]) -> None:
    route = respx.post(f"{URL}/v3/cluster/member/promote")
    async with httpx.AsyncClient() as client:
        backend = EtcdBackend(client, URL)
        respond(route, answers["promote_not_in_sync"])
        with pytest.raises(BackendUnavailable, match="in sync with leader"):
            await backend.promote("1", via=URL)
        respond(route, answers["promote_voter"])
        await backend.promote("1", via=URL)  # a voter already: done


@respx.mock
async def test_removing(answers: dict[str, Any]) -> None:
    route = respx.post(f"{URL}/v3/cluster/member/remove")
    async with httpx.AsyncClient() as client:
        backend = EtcdBackend(client, URL)
        respond(route, answers["remove_member"])
        await backend.remove("1", leader_url=URL)
        respond(route, answers["remove_unknown"])
        await backend.remove("1", leader_url=URL)  # gone already: done


@respx.mock
async def test_transferring_leadership(answers: dict[str, Any]) -> None:
    route = respx.post(f"{URL}/v3/maintenance/transfer-leadership")
    async with httpx.AsyncClient() as client:
        backend = EtcdBackend(client, URL)
        respond(route, answers["transfer_leadership"])
        await backend.transfer_leadership(leader_url=URL, target_id="1")
        for refused, says in (("transfer_from_follower", "not leader"),
                              ("transfer_to_learner", "bad leader transferee")):
            respond(route, answers[refused])
            with pytest.raises(BackendUnavailable, match=says):
                await backend.transfer_leadership(leader_url=URL, target_id="1")
