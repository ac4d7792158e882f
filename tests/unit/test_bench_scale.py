"""The API-load benchmark's arithmetic: the agent's requests by window and pod, read from
audit events, and the rate per pod per hour."""

from __future__ import annotations

from typing import Any

from bench.scale import POD_NAME, load

USER = "system:serviceaccount:etcd-load:sts-agent"


def event(at: str, pod: str, verb: str = "get", resource: str = "pods",
          user: str = USER) -> dict[str, Any]:
    return {"stageTimestamp": f"2026-12-07T01:00:{at}Z", "verb": verb,
            "requestURI": f"/api/v1/{resource}", "objectRef": {"resource": resource},
            "user": {"username": user, "extra": {POD_NAME: [pod]}}}


def test_only_the_agents_requests_in_the_window_count_per_pod() -> None:
    start = 1796605200.0  # 2026-12-07T01:00:00Z
    events = [event("00.000000", "etcd-0"), event("05.000000", "etcd-1", "patch"),
              event("09.500000", "etcd-0"),
              event("10.000000", "etcd-2"),  # the window's end: the next window's
              event("01.000000", "etcd-0", user="system:node:n1")]  # the kubelet's
    seen = load("etcd", "steady", events, USER, start, start + 10)
    assert (seen.requests, seen.pods, seen.seconds) == (3, 2, 10.0)
    assert seen.top == (("get pods", 2), ("patch pods", 1))
    assert seen.per_pod_hour == 3 / 2 / 10 * 3600


def test_an_empty_window_asks_nothing() -> None:
    seen = load("etcd", "steady", [], USER, 0.0, 60.0)
    assert (seen.requests, seen.pods, seen.per_pod_hour) == (0, 0, 0.0)
