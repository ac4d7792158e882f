"""The API-load benchmark's arithmetic: the agent's requests by window and pod, read from
audit events, and the rate per pod per hour."""

from __future__ import annotations

import os
from typing import Any

import pytest

from bench.scale import POD_NAME, Cost, cpu_seconds, load, print_costs

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


def test_a_sidecars_cost_is_its_cpu_over_its_polls(capsys: pytest.CaptureFixture[str]) -> None:
    costs = [Cost("etcd", 3, "etcd-0", 60.0, 60, 0.6, 40.0),
             Cost("etcd", 3, "etcd-1", 60.0, 59, 1.18, 42.0),
             Cost("etcd", 3, "etcd-2", 60.0, 0, 0.0, 41.0)]  # never polled: no figure
    assert costs[0].cpu_ms_per_poll == 10.0
    assert costs[2].cpu_ms_per_poll == 0.0
    print_costs(costs)
    row = capsys.readouterr().out.splitlines()[-1]
    assert row == "| etcd | 3 | 3 | 0 | 10.0 / 20.0 | 1.97 | 41.0 / 42.0 |"


def test_cpu_seconds_reads_this_process_and_skips_the_gone() -> None:
    assert cpu_seconds([os.getpid()]) > 0  # the test run has used CPU
    assert cpu_seconds([2**22 + 7]) == 0.0  # above any pid_max: gone, nothing added
