"""The comparison that keeps the captured etcd answers honest against a live etcd."""

from __future__ import annotations

import json

from player.stores.etcd import VERSIONS
from player.stores.etcd_answers import READS, SITUATIONS, differences, missing, path_for


def test_missing_names_each_absent_path() -> None:
    answer = {"header": {"member_id": "1"}, "members": [{"ID": "1"}, {"name": "x"}]}
    assert missing(answer, "header.member_id") == []
    assert missing(answer, "members[].ID") == ["members.ID"]
    assert missing(answer, "leader") == ["leader"]
    assert missing({"header": "flat"}, "header.member_id") == ["header.member_id"]


def test_differences_in_kind_not_in_value_or_extra_keys() -> None:
    captured = {"leader": "1", "members": [{"ID": "1"}], "only_here": 1}
    assert differences({"leader": "2", "members": [{"ID": "3"}], "new": True}, captured) == []
    assert differences({"leader": 2, "members": [{"ID": ["3"]}]}, captured) == [
        ".leader: str -> int", ".members[0].ID: str -> list"]
    assert differences([], {}) == [".: dict -> list"]


def test_captures_hold_every_situation_and_what_the_backend_reads() -> None:
    for version in VERSIONS:
        document = json.loads(path_for(version).read_text())
        assert sorted(document["answers"]) == sorted(SITUATIONS), version
        for name, paths in READS.items():
            for path in paths:
                assert missing(document["answers"][name]["body"], path) == [], (
                    version, name, path)
