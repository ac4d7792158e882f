"""Every answer of etcd's JSON gateway the agent reads, captured from a real etcd version.

``python -m player.stores.etcd_answers 3.6`` plays a 3-member cluster of that version on
loopback, drives it through each situation the agent's etcd backend parses (a learner
added and not started, a second learner refused, a learner's own view, promotions,
removals, leadership transfer) and writes what each request answered to
``tests/unit/stores/etcd/answers/<version>.json``: the unit tests parse those files, and
an integration test checks that a live etcd still answers in the same shape.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from player.stores.etcd import VERSIONS, EtcdCluster
from player.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]
ANSWERS_DIR = ROOT / "tests" / "unit" / "stores" / "etcd" / "answers"

# What is captured, in order: the name of each answer and what it shows.
SITUATIONS = {
    "voter_member_list": "member/list from a follower; one learner added, not started",
    "voter_status": "maintenance/status from that follower",
    "leader_status": "maintenance/status from the leader",
    "learner_added": "member/add of a learner",
    "second_learner_refused": "member/add of a second learner while one is not promoted",
    "duplicate_peer_url": "member/add of a peer URL already a member",
    "promote_not_in_sync": "member/promote of a learner that never started",
    "learner_member_list": "member/list asked of a started learner",
    "learner_status": "maintenance/status of a started learner",
    "promote_voter": "member/promote of a voter",
    "transfer_to_learner": "transfer-leadership to a learner",
    "transfer_from_follower": "transfer-leadership asked of a follower",
    "transfer_leadership": "transfer-leadership from the leader to a follower",
    "remove_unknown": "member/remove of an id that is no member",
    "remove_member": "member/remove of the learner",
}


def _answer(response: Any) -> dict[str, Any]:
    """The status code and the body: JSON where it is, else the text."""
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    return {"status": response.status_code, "body": body}


def capture(version: str, workdir: Path) -> dict[str, dict[str, Any]]:
    """Play the situations of ``SITUATIONS`` on etcd ``version``; name -> answer."""
    cluster = EtcdCluster(workdir, version=version)
    found: dict[str, dict[str, Any]] = {}

    def post(ordinal: int, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return _answer(cluster.http.post(cluster.client_url(ordinal) + path, json=body))

    def until(ordinal: int, path: str, body: dict[str, Any],
              accept: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        """Ask until the answer is one ``accept`` takes (timing-dependent answers)."""
        def check() -> dict[str, Any] | None:
            answer = post(ordinal, path, body)
            return answer if accept(answer) else None

        return wait_until(check, what=f"etcd {version}: {what}", timeout=30, interval=0.25)

    def until_ok(name: str, ordinal: int, path: str, body: dict[str, Any]) -> None:
        """etcd refuses membership changes while a member is younger than 5 s."""
        found[name] = until(ordinal, path, body, lambda a: a["status"] == 200,
                            f"{name} answered with 200")

    try:
        cluster.start(3)
        leader = cluster.wait_leader()
        follower = next(o for o in range(3) if o != leader)
        until_ok("learner_added", leader, "/v3/cluster/member/add",
                 {"peerURLs": [cluster.peer_url(3)], "isLearner": True})
        learner_id = found["learner_added"]["body"]["member"]["ID"]
        found["second_learner_refused"] = post(leader, "/v3/cluster/member/add", {
            "peerURLs": [cluster.peer_url(4)], "isLearner": True})
        found["duplicate_peer_url"] = post(leader, "/v3/cluster/member/add", {
            "peerURLs": [cluster.peer_url(3)], "isLearner": True})
        found["promote_not_in_sync"] = post(leader, "/v3/cluster/member/promote",
                                            {"ID": learner_id})
        # The follower applies the learner's addition a moment after the leader commits.
        found["voter_member_list"] = until(
            follower, "/v3/cluster/member/list", {},
            lambda a: a["status"] == 200 and len(a["body"].get("members", [])) == 4,
            "the follower lists the learner")
        found["voter_status"] = post(follower, "/v3/maintenance/status", {})
        leader = cluster.wait_leader()  # the same, unless an election came in between
        found["leader_status"] = post(leader, "/v3/maintenance/status", {})

        members = found["voter_member_list"]["body"]["members"]
        initial = {int(m["name"].rsplit("-", 1)[1]): m["peerURLs"][0]
                   for m in members if m.get("name")}
        initial[3] = cluster.peer_url(3)
        cluster._node(3)
        cluster.launch(3, cluster._command(3, initial, "existing"))
        wait_until(lambda: post(3, "/v3/maintenance/status", {})["status"] == 200,
                   what=f"the etcd {version} learner to answer status", timeout=30)
        found["learner_member_list"] = post(3, "/v3/cluster/member/list", {})
        found["learner_status"] = post(3, "/v3/maintenance/status", {})

        leader = cluster.wait_leader()
        follower = next(o for o in range(3) if o != leader)
        voter_id = next(m["ID"] for m in members if m.get("name") == f"etcd-{follower}")
        # etcd checks "in sync" before "a learner", for voters too: a follower a few
        # entries behind is refused as not in sync. Asked until the voter rule answers.
        found["promote_voter"] = until(
            leader, "/v3/cluster/member/promote", {"ID": voter_id},
            lambda a: a["status"] != 200 and "in sync" not in str(a["body"]),
            "promoting a voter refused as a voter")
        found["transfer_to_learner"] = post(leader, "/v3/maintenance/transfer-leadership",
                                            {"targetID": learner_id})
        found["transfer_from_follower"] = post(
            follower, "/v3/maintenance/transfer-leadership", {"targetID": voter_id})
        found["transfer_leadership"] = post(leader, "/v3/maintenance/transfer-leadership",
                                            {"targetID": voter_id})
        cluster.wait_leader()
        found["remove_unknown"] = post(follower, "/v3/cluster/member/remove", {"ID": "12345"})
        until_ok("remove_member", follower, "/v3/cluster/member/remove", {"ID": learner_id})
    finally:
        cluster.stop_all()
    return {name: found[name] for name in SITUATIONS}


# What the agent's etcd backend reads of each answer (dotted paths, ``[]`` for every
# item of a list): a live answer must have them all, whatever else it adds or drops
# (the gateway leaves out zero values; 3.6 adds storageVersion once it is known).
READS: dict[str, tuple[str, ...]] = {
    "voter_member_list": ("header.member_id", "members[].ID", "members[].peerURLs"),
    "voter_status": ("header.member_id", "leader", "raftIndex", "raftAppliedIndex",
                     "version"),
    "leader_status": ("header.member_id", "leader", "raftIndex", "raftAppliedIndex"),
    "learner_status": ("header.member_id", "leader", "raftIndex", "raftAppliedIndex",
                       "isLearner"),
    "learner_added": ("member.ID", "members[].ID", "members[].peerURLs"),
    "remove_member": ("members[].ID",),
}


def missing(value: Any, path: str) -> list[str]:
    """The parts of ``path`` absent from ``value`` (empty when all are there)."""
    head, _, rest = path.partition(".")
    key, each = head.removesuffix("[]"), head.endswith("[]")
    if not isinstance(value, dict) or key not in value:
        return [path]
    inner = value[key]
    if not rest:
        return []
    items = inner if each and isinstance(inner, list) else [inner]
    return [f"{key}.{lost}" for item in items for lost in missing(item, rest)]


def differences(live: Any, captured: Any, where: str = "") -> list[str]:
    """Where two answers disagree in kind (object, list, string, number, boolean) on
    what both have; values and keys only one of them has are not compared."""
    if isinstance(live, dict) and isinstance(captured, dict):
        return [found for key in sorted(live.keys() & captured.keys())
                for found in differences(live[key], captured[key], f"{where}.{key}")]
    if isinstance(live, list) and isinstance(captured, list):
        if live and captured:
            return differences(live[0], captured[0], f"{where}[0]")
        return []
    if type(live) is not type(captured):
        return [f"{where or '.'}: {type(captured).__name__} -> {type(live).__name__}"]
    return []


def path_for(version: str) -> Path:
    return ANSWERS_DIR / f"{version}.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("versions", nargs="*", default=sorted(VERSIONS),
                        help=f"etcd versions to capture (default: {' '.join(sorted(VERSIONS))})")
    args = parser.parse_args(argv)
    ANSWERS_DIR.mkdir(parents=True, exist_ok=True)
    for version in args.versions:
        with tempfile.TemporaryDirectory(prefix=f"etcd-{version}-") as workdir:
            answers = capture(version, Path(workdir))
        document = {"etcd": version, "situations": SITUATIONS, "answers": answers}
        path_for(version).write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
        print(f"{path_for(version)}: {len(answers)} answers", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
