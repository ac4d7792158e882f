"""etcd join planning: every start a StatefulSet can produce, as a table."""

from __future__ import annotations

from agent.model import Member
from agent.stores.etcd.plan import Action, plan_start


def url(i: int) -> str:
    return f"http://etcd-{i}.etcd.prod.svc.cluster.local:2380"


BOOT = [(f"etcd-{i}", url(i)) for i in range(3)]


def member(i: int, *, started: bool = True, mid: str | None = None,
           learner: bool = False) -> Member:
    return Member(id=mid or f"id{i}", name=f"etcd-{i}" if started else "", address=url(i),
                  api_url=f"http://etcd-{i}:2379" if started else None, voter=not learner)


def test_a_late_bootstrap_member_starts_into_its_entry() -> None:
    """Its peers formed the cluster first: its entry has its name (from initial-cluster)
    but no client URLs, as it never started. Before, it removed that entry as lost."""
    waiting = Member(id="id2", name="etcd-2", address=url(2), api_url=None)
    plan = plan_start(name="etcd-2", peer_url=url(2), bootstrap=BOOT,
                      members=[member(0), member(1), waiting], has_data=False,
                      bootstrap_blocker=None)
    assert plan.actions == () and plan.state == "existing"
    assert "never started" in plan.reason


Planned = tuple[str, str, tuple[Action, ...]]


def plan(i: int, members: list[Member] | None, has_data: bool) -> Planned:
    result = plan_start(name=f"etcd-{i}", peer_url=url(i), bootstrap=BOOT, members=members,
                       has_data=has_data, bootstrap_blocker=None)
    return result.state, result.initial_cluster, result.actions


def test_fresh_bootstrap_same_string_on_every_pod() -> None:
    strings = {plan(i, None, False)[1] for i in range(3)}
    assert strings == {",".join(f"etcd-{i}={url(i)}" for i in range(3))}
    assert plan(0, None, False)[0] == "new"


def test_pod_beyond_bootstrap_waits_for_a_cluster() -> None:
    assert plan(3, None, False)[0] == "wait"


def test_whole_cluster_restart_starts_from_data() -> None:
    state, _, actions = plan(1, None, True)
    assert state == "new" and actions == ()


def test_plain_restart_changes_nothing() -> None:
    state, cluster, actions = plan(1, [member(0), member(1), member(2)], True)
    assert (state, actions) == ("existing", ())
    assert cluster == ",".join(f"etcd-{i}={url(i)}" for i in range(3))


def test_scale_up_joins_as_learner() -> None:
    state, cluster, actions = plan(3, [member(0), member(1), member(2)], False)
    assert state == "existing"
    assert actions == (Action("add_learner", url(3)),)
    assert cluster.endswith(f"etcd-3={url(3)}") and cluster.count("=") == 4


def test_removed_member_back_with_old_data() -> None:
    _, _, actions = plan(2, [member(0), member(1)], True)
    assert actions == (Action("move_data_aside"), Action("add_learner", url(2)))


def test_volume_lost_but_still_a_member() -> None:
    _, _, actions = plan(2, [member(0), member(1), member(2)], False)
    assert actions == (Action("remove_member", "id2"), Action("add_learner", url(2)))


def test_retried_init_after_add_reuses_the_entry() -> None:
    state, cluster, actions = plan(3, [member(0), member(1), member(2),
                                       member(3, started=False, learner=True)], False)
    assert (state, actions) == ("existing", ())
    assert f"etcd-3={url(3)}" in cluster


def test_data_of_another_member_under_our_name_is_moved_aside() -> None:
    members = [member(0), member(1), member(2, mid="new-id")]
    result = plan_start(name="etcd-2", peer_url=url(2), bootstrap=BOOT, members=members,
                       has_data=True, local_id="old-id", bootstrap_blocker=None)
    assert result.state == "existing"
    assert result.actions == (Action("remove_member", "new-id"), Action("move_data_aside"),
                              Action("add_learner", url(2)))
    same = plan_start(name="etcd-2", peer_url=url(2), bootstrap=BOOT, members=members,
                     has_data=True, local_id="new-id", bootstrap_blocker=None)
    assert same.actions == ()


def test_unstarted_other_members_are_named_from_their_pods() -> None:
    """etcd-3 was added by its own init and has not started; etcd-4's initial-cluster
    must still list it (etcd checks every URL), under a name, never an empty one."""
    members = [member(0), member(1), member(2), member(3, started=False, learner=True)]
    result = plan_start(name="etcd-4", peer_url=url(4), bootstrap=BOOT, members=members,
                       has_data=False, names_by_url={url(3): "etcd-3"}, bootstrap_blocker=None)
    assert f"etcd-3={url(3)}" in result.initial_cluster.split(",")
    anonymous = plan_start(name="etcd-4", peer_url=url(4), bootstrap=BOOT, members=members,
                          has_data=False, bootstrap_blocker=None)
    assert f"member-id3={url(3)}" in anonymous.initial_cluster.split(",")


def test_no_bootstrap_unless_every_bootstrap_member_is_proven_empty() -> None:
    """With no data and no peer answering, "new" would give this member its old id back
    (etcd derives it from names and URLs) with an empty log: it waits instead."""
    result = plan_start(name="etcd-0", peer_url=url(0), bootstrap=BOOT, members=None,
                        has_data=False, bootstrap_blocker="etcd-1 holds raft state")
    assert result.state == "wait" and result.actions == ()
    assert "not bootstrapping: etcd-1 holds raft state" in result.reason
    restart = plan_start(name="etcd-0", peer_url=url(0), bootstrap=BOOT, members=None,
                         has_data=True, bootstrap_blocker="etcd-1 holds raft state")
    assert restart.state == "new" and restart.actions == ()  # starts from its own data
