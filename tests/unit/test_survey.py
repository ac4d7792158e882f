"""Asking a cluster through its members: who answers, and the leader's own view via peers."""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.errors import BackendUnavailable
from agent.model import ClusterView, Member
from agent.survey import Leader, answering, leader_through, progress


def member(name: str, *, reachable: bool | None = None, api: bool = True) -> Member:
    return Member(id=name, name=name, address=f"{name}:2",
                  api_url=f"http://{name}:1" if api else None, reachable=reachable)


MEMBERS = (member("a"), member("b"), member("c"))


@dataclass
class Cluster:
    """Each node answers its own view; ``leaders`` is what each node believes."""

    leaders: dict[str, str | None]
    down: set[str] = field(default_factory=set)
    asked: list[str] = field(default_factory=list)

    async def ask(self, url: str) -> ClusterView:
        node = url.removeprefix("http://").split(":")[0]
        self.asked.append(node)
        if node in self.down:
            raise BackendUnavailable(f"{url}: connection refused")
        return ClusterView(members=MEMBERS, leader_id=self.leaders[node], self_id=node,
                           applied_index=10 * (ord(node) - ord("a")))


async def test_answering_trusts_the_store_and_asks_only_the_unknown() -> None:
    cluster = Cluster({"a": "a", "b": "a", "c": "a", "d": "a"}, down={"c"})
    listed = [member("a", reachable=True), member("b"), member("c"),
              member("d", reachable=False), member("e", api=False)]
    assert await answering(cluster.ask, listed) == {"a", "b"}
    assert sorted(cluster.asked) == ["b", "c"]  # d is known unreachable, e has no API


async def test_progress_gives_what_each_answering_member_applied() -> None:
    cluster = Cluster({"a": "a", "b": "a", "c": "a", "d": "a"}, down={"c"})
    listed = [member("a", reachable=True), member("b"), member("c"), member("d")]
    assert await progress(cluster.ask, listed) == {"a": None, "b": 10, "d": 30}


async def test_leader_found_directly_or_through_a_follower() -> None:
    cluster = Cluster({"a": "b", "b": "b", "c": "b"})
    found = await leader_through(cluster.ask, ["http://a:1"])
    assert isinstance(found, Leader)
    assert (found.view.self_id, found.url) == ("b", "http://b:1")
    assert found.via == "leader http://b:1 via peer http://a:1"
    direct = await leader_through(cluster.ask, ["http://b:1"])
    assert isinstance(direct, Leader) and direct.via == "peer http://b:1"


async def test_a_leader_that_no_longer_leads_does_not_count() -> None:
    # a still believes b leads; b has seen c win an election meanwhile, c is down.
    cluster = Cluster({"a": "b", "b": "c", "c": "c"}, down={"c"})
    assert await leader_through(cluster.ask, ["http://a:1", "http://c:1"]) == \
        "no peer knows a reachable leader"


async def test_no_peers_or_no_leader_says_why() -> None:
    cluster = Cluster({"a": None, "b": None, "c": None})
    assert await leader_through(cluster.ask, []) == "no known peers to ask"
    assert await leader_through(cluster.ask, ["http://a:1", "http://b:1"]) == \
        "no peer knows a reachable leader"
