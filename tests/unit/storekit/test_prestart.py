"""What the stores' pre-start work shares: data moved aside (at most ``keep`` copies kept),
and whether a member with no state may bootstrap."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import respx

from agent.config.settings import Settings
from agent.discovery import ServiceNames
from agent.identity import PodIdentity
from agent.storekit.prestart import PrestartBase, move_aside
from agent.stores.etcd.prestart import EtcdPrestart


def member(tmp_path: Path, text: str) -> Path:
    (tmp_path / "member" / "wal").mkdir(parents=True)
    (tmp_path / "member" / "wal" / "0.wal").write_text(text)
    return tmp_path / "member"


def copies(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in tmp_path.glob("member.removed-*"))


def test_old_data_is_moved_aside(tmp_path: Path) -> None:
    target, deleted = move_aside(member(tmp_path, "old"))
    assert target.parent == tmp_path and target.name.startswith("member.removed-")
    assert (target / "wal" / "0.wal").read_text() == "old"
    assert not (tmp_path / "member").exists() and deleted == []


def test_only_the_newest_copies_are_kept(tmp_path: Path) -> None:
    """Scaled down and up again and again on a kept volume: the copies stay bounded."""
    (tmp_path / "member.removed-20261101T000000Z").mkdir()
    (tmp_path / "member.removed-20261102T000000Z").mkdir()
    (tmp_path / "member.removed-20261102T000000Z-2").mkdir()
    (tmp_path / "unrelated").mkdir()
    target, deleted = move_aside(member(tmp_path, "newest"), keep=2)
    assert sorted(p.name for p in deleted) == ["member.removed-20261101T000000Z",
                                               "member.removed-20261102T000000Z"]
    assert copies(tmp_path) == sorted(["member.removed-20261102T000000Z-2", target.name])
    assert (target / "wal" / "0.wal").read_text() == "newest"
    assert (tmp_path / "unrelated").is_dir()


def test_two_moves_within_one_second_keep_both(tmp_path: Path) -> None:
    first, _ = move_aside(member(tmp_path, "first"), keep=5)
    second, _ = move_aside(member(tmp_path, "second"), keep=5)
    assert first != second and len(copies(tmp_path)) == 2
    assert (second / "wal" / "0.wal").read_text() == "second"
    # Within one second too, the newest is the one kept.
    third, deleted = move_aside(member(tmp_path, "third"), keep=1)
    assert sorted(deleted) == sorted([first, second]) and copies(tmp_path) == [third.name]


def test_the_new_copy_and_foreign_names_are_never_deleted(tmp_path: Path) -> None:
    """A copy stamped later than now (a node whose clock ran ahead) does not push the new
    copy out; names this function does not make are not its to delete."""
    (tmp_path / "member.removed-29991231T235959Z").mkdir()
    (tmp_path / "member.removed-backup").mkdir()
    (tmp_path / "member.removed-20261101T000000Z.tar").write_text("user's")
    target, deleted = move_aside(member(tmp_path, "new"), keep=1)
    assert deleted == [tmp_path / "member.removed-29991231T235959Z"]
    assert (target / "wal" / "0.wal").read_text() == "new"
    assert copies(tmp_path) == sorted(["member.removed-20261101T000000Z.tar",
                                       "member.removed-backup", target.name])


def etcd_prestart(ordinal: int = 0) -> PrestartBase:
    settings = Settings(backend="etcd", bootstrap_expect=3, listen="0.0.0.0:9090",
                        store_timeout_seconds=0.5)
    names = ServiceNames(statefulset="etcd", service="etcd", namespace="prod",
                         domain="cluster.local")
    return EtcdPrestart(settings, names, PodIdentity("etcd", ordinal), httpx.AsyncClient())


def init_url(ordinal: int) -> str:
    return f"http://etcd-{ordinal}.etcd.prod.svc.cluster.local:9090/init?from=etcd-0"


@respx.mock
async def test_bootstrap_only_when_every_other_member_says_it_has_no_state() -> None:
    respx.get(init_url(1)).respond(json={"pod": "etcd-1", "has_state": False})
    respx.get(init_url(2)).respond(json={"pod": "etcd-2", "has_state": False})
    assert await etcd_prestart().bootstrap_blocker([]) is None


@pytest.mark.parametrize(("answer", "expected"), [
    (httpx.Response(200, json={"has_state": True}), "etcd-2 holds raft state"),
    (httpx.Response(404, json={"error": "not found"}), "no answer from etcd-2"),  # a sidecar
    (httpx.Response(200, text="<html>"), "no answer from etcd-2"),
    (httpx.Response(200, json={"has_state": "no"}), "no answer from etcd-2"),
    (httpx.ConnectError("refused"), "no answer from etcd-2"),
])
@respx.mock
async def test_a_peer_with_state_or_silent_blocks_the_bootstrap(
        answer: httpx.Response | Exception, expected: str) -> None:
    respx.get(init_url(1)).respond(json={"has_state": False})
    route = respx.get(init_url(2))
    if isinstance(answer, Exception):
        route.side_effect = answer
    else:
        route.return_value = answer
    blocker = await etcd_prestart().bootstrap_blocker([])
    assert blocker is not None and expected in blocker


@respx.mock
async def test_what_a_peers_store_said_is_not_asked_again() -> None:
    respx.get(init_url(2)).respond(json={"has_state": False})
    assert await etcd_prestart().bootstrap_blocker([], {1: False}) is None
    blocker = await etcd_prestart().bootstrap_blocker([], {1: True})
    assert blocker is not None and blocker.startswith("etcd-1 holds raft state")
    assert respx.calls.call_count == 2  # etcd-2's init, once each; etcd-1 never


@respx.mock
async def test_a_peer_proven_empty_stays_so_for_this_init() -> None:
    """A first start: etcd-1 asked us (so it had no state), then bootstrapped and went
    silent (its etcd serves nothing before a quorum); etcd-2 said so once, then its init
    ended. Neither silence blocks us now; a store that says it holds state still does."""
    route = respx.get(init_url(2))
    route.respond(json={"has_state": False})
    prestart = etcd_prestart()
    prestart.peer_asked("etcd-1")
    assert await prestart.bootstrap_blocker([]) is None
    route.side_effect = httpx.ConnectError("refused")
    assert await prestart.bootstrap_blocker([]) is None
    assert route.call_count == 1
    blocker = await prestart.bootstrap_blocker([], {2: True})
    assert blocker is not None and blocker.startswith("etcd-2 holds raft state")
