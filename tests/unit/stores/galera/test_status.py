"""wsrep status: parsed, judged with every failing check named, a view for /status."""

from __future__ import annotations

from typing import Any

import pytest

from agent.errors import BackendError
from agent.model import Snapshot
from agent.readiness import Policy, judge
from agent.stores.galera.status import parse_status, problems
from tests.unit.stores.galera.answers import STATUS, parse


def status(**changes: str) -> dict[str, Any]:
    return {**STATUS, **changes}


def failing(answer: dict[str, Any]) -> dict[str, str]:
    return {name: why for name, why in problems(parse_status(answer)) if why is not None}


def test_a_synced_primary_node_is_its_own_authority() -> None:
    view = parse(STATUS)
    assert view.leads and view.self_id == "10.0.0.2:3306"
    assert [m.id for m in view.members] == ["10.0.0.1:3306", "10.0.0.2:3306", "10.0.0.3:3306"]
    assert view.lag == 0 and failing(STATUS) == {}
    details = view.as_dict()["details"]
    assert (details["cluster_size"], details["local_state_comment"],
            details["sst_method"]) == (3, "Synced", "rsync")
    assert details["last_committed"] == view.applied_index


def test_non_primary_names_each_failing_check() -> None:
    """2 of 3 lost: state 0, non-Primary, wsrep_ready OFF but still connected."""
    answer = status(wsrep_cluster_status="non-Primary", wsrep_local_state="0",
                    wsrep_local_state_comment="Initialized", wsrep_ready="OFF")
    assert set(failing(answer)) == {"galera_primary", "galera_synced", "galera_ready"}
    assert "non-Primary" in failing(answer)["galera_primary"]
    view = parse(answer)
    assert view.leader_id is None and not view.leads


@pytest.mark.parametrize(("sst", "ready"), [("rsync", False), ("mariabackup", True),
                                             ("mysqldump", False), (None, False)])
def test_a_donor_counts_only_with_a_copy_the_server_says_does_not_block(
        sst: str | None, ready: bool) -> None:
    """The method is the server's own wsrep_sst_method; one it does not name (an older
    server, a variable not read) blocks, as the safe reading."""
    answer = status(wsrep_local_state="2", wsrep_local_state_comment="Donor/Desynced")
    if sst is None:
        del answer["wsrep_sst_method"]
    else:
        answer["wsrep_sst_method"] = sst
    why = failing(answer).get("galera_synced")
    assert (why is None) is ready
    if not ready:
        method = sst or "a method the server did not name"
        assert why == (f"donor: serving a full copy with {method}, which blocks writes "
                       "on this node while it runs")


def test_the_receive_queue_is_the_lag_the_verdict_measures() -> None:
    view = parse(status(wsrep_local_recv_queue="150"))
    snapshot = Snapshot(local=view, local_ok_at=1.0, authority=view,
                        authority_source="local", self_id=view.self_id)
    verdict = judge(snapshot, now=1.0, policy=Policy(max_lag_entries=100), leaving=False)
    assert not verdict.ready and verdict.reasons == [
        "catching up: 150 entries behind the leader (max 100)"]
    joining = parse(status(wsrep_local_state="1", wsrep_local_state_comment="Joining"))
    snapshot = Snapshot(local=joining, local_ok_at=1.0, authority=joining,
                        authority_source="local", self_id=joining.self_id)
    verdict = judge(snapshot, now=1.0, policy=Policy(), leaving=False)
    assert verdict.reasons == ["not synced: Joining"]
    assert "galera_synced" in [c["name"] for c in verdict.as_dict()["checks"]]


@pytest.mark.parametrize("bad", [
    {}, [], status(wsrep_local_state="x"), {**STATUS, "wsrep_ready": 3}])
def test_garbage_is_a_backend_error(bad: Any) -> None:
    with pytest.raises(BackendError):
        parse(bad)
