"""Learner promotion: only a caught-up learner, through the leader, retried on refusal."""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.errors import BackendUnavailable
from agent.model import ClusterView, Member, Snapshot
from agent.promote import Promoter


def view(self_id: str, *, learner: bool, applied: int = 10, commit: int = 10) -> ClusterView:
    return ClusterView(
        members=(Member(id="a", name="a", address="a:2", api_url="http://a:1"),
                 Member(id="b", name="b", address="b:2", api_url="http://b:1",
                        voter=not learner)),
        leader_id="a", self_id=self_id, applied_index=applied, commit_index=commit)


@dataclass
class FakeStore:
    refuse: int = 0
    promoted: list[tuple[str, str]] = field(default_factory=list)

    async def promote(self, member_id: str, *, via: str) -> None:
        if self.refuse:
            self.refuse -= 1
            raise BackendUnavailable("not in sync with leader")
        self.promoted.append((member_id, via))


def snapshot(*, learner: bool, applied: int) -> Snapshot:
    return Snapshot(local=view("b", learner=learner, applied=applied), self_id="b",
                    authority=view("a", learner=learner, commit=10))


async def test_caught_up_learner_is_promoted_through_the_leader() -> None:
    store = FakeStore(refuse=1)
    promoter = Promoter(store, max_lag_entries=2)
    await promoter.on_poll(snapshot(learner=True, applied=9))  # refused: retried next poll
    await promoter.on_poll(snapshot(learner=True, applied=9))
    assert store.promoted == [("b", "http://a:1")]


async def test_lagging_learner_and_voter_are_left_alone() -> None:
    store = FakeStore()
    promoter = Promoter(store, max_lag_entries=2)
    await promoter.on_poll(snapshot(learner=True, applied=5))
    await promoter.on_poll(snapshot(learner=False, applied=10))
    await promoter.on_poll(Snapshot())
    assert store.promoted == []
