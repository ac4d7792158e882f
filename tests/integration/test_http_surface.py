"""The sidecar's HTTP surface under abuse, on a real etcd cluster: unknown paths and
methods, oversized headers and bodies, a stalled client, and a probe flood; and the
metrics the chart's alerts read, as a live sidecar exports them."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from player.stores.etcd import EtcdHarness
from tests.integration.conftest import ready_cluster, require_store

pytestmark = pytest.mark.integration

ALERT_TESTS = Path(__file__).parents[1] / "static" / "alerts" / "rules_test.yaml"
# The labels Prometheus gives every series it scrapes through the chart's PodMonitor.
TARGET_LABELS = {"namespace", "pod"}
FLOOD_REQUESTS = 10_000
FLOOD_CONCURRENCY = 200


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdHarness]:
    require_store("etcd")
    harness = EtcdHarness(tmp_path_factory.mktemp("surface"),
                          sidecar_env={"AGENT_POLL_INTERVAL_SECONDS": "0.5",
                                       "AGENT_STALE_AFTER_SECONDS": "5"})
    with ready_cluster(harness):
        yield harness


def _raw(host: str, port: int, data: bytes) -> bytes:
    """Send ``data`` on a fresh connection; whatever the server answers before it closes
    (a server may reset a connection that is still sending: that answer is empty)."""
    chunks = []
    with socket.create_connection((host, port), timeout=5) as sock:
        try:
            sock.sendall(data)
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (ConnectionResetError, BrokenPipeError):
            pass
    return b"".join(chunks)


def _refused(answer: bytes) -> bool:
    """A 400/431, or the connection closed with no answer: anything but serving it."""
    return answer == b"" or answer.split(b" ", 2)[1:2] in ([b"400"], [b"431"])


def _address(etcd: EtcdHarness) -> tuple[str, int]:
    url = httpx.URL(etcd.sidecars[1].url)
    assert url.host and url.port
    return url.host, url.port


def test_unknown_paths_and_methods(etcd: EtcdHarness) -> None:
    base = etcd.sidecars[1].url
    with httpx.Client(timeout=5) as http:
        for path in ("/", "/admin", "/readyz/x", "/%00", "/" + "a" * 4000):
            response = http.get(base + path)
            assert response.status_code == 404, path
            assert response.json() == {"error": "not found"}
        for method in ("PUT", "DELETE", "PATCH", "POST"):
            response = http.request(method, base + "/readyz")
            assert response.status_code == 405, method
            assert response.headers["Allow"] == "GET, HEAD"
        response = http.get(base + "/leave")
        assert response.status_code == 405 and response.headers["Allow"] == "POST"
        assert http.get(base + "/readyz").status_code == 200


def test_oversized_header_and_body_are_refused_and_serving_goes_on(etcd: EtcdHarness) -> None:
    host, port = _address(etcd)
    answer = _raw(host, port, b"GET /readyz HTTP/1.1\r\nHost: x\r\nX-Big: "
                  + b"a" * 100_000 + b"\r\nConnection: close\r\n\r\n")
    assert _refused(answer), answer[:80]
    answer = _raw(host, port, b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n"
                  b"Connection: close\r\n\r\n")
    assert _refused(answer), answer[:80]
    with httpx.Client(timeout=10) as http:
        # A body nobody reads: answered by the method check, not buffered.
        response = http.post(etcd.sidecars[1].url + "/readyz", content=b"x" * 5_000_000)
        assert response.status_code == 405
        assert http.get(etcd.sidecars[1].url + "/readyz").status_code == 200


def test_stalled_clients_do_not_block_probes(etcd: EtcdHarness) -> None:
    host, port = _address(etcd)
    stalled = []
    try:
        for _ in range(50):  # half a request line each, then silence
            sock = socket.create_connection((host, port), timeout=5)
            sock.sendall(b"GET /rea")
            stalled.append(sock)
        with httpx.Client(timeout=2) as http:
            for _ in range(20):
                assert http.get(etcd.sidecars[1].url + "/readyz").status_code == 200
    finally:
        for sock in stalled:
            sock.close()


async def _flood(url: str) -> tuple[dict[int, int], set[bytes], float]:
    """FLOOD_REQUESTS probes at FLOOD_CONCURRENCY; the /livez heartbeat age is sampled
    alongside on its own connection."""
    counts: dict[int, int] = {}
    bodies: set[bytes] = set()
    worst_heartbeat = 0.0
    remaining = FLOOD_REQUESTS
    limits = httpx.Limits(max_connections=FLOOD_CONCURRENCY)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http, \
            httpx.AsyncClient(timeout=30) as watcher:

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                response = await http.get(url + "/readyz")
                counts[response.status_code] = counts.get(response.status_code, 0) + 1
                bodies.add(response.content)

        async def watch(done: asyncio.Event) -> None:
            nonlocal worst_heartbeat
            while not done.is_set():
                answer = (await watcher.get(url + "/livez")).json()
                worst_heartbeat = max(worst_heartbeat, answer["heartbeat_age_seconds"])
                await asyncio.sleep(0.1)  # sampling period of the heartbeat watch

        done = asyncio.Event()
        watching = asyncio.create_task(watch(done))
        await asyncio.gather(*(worker() for _ in range(FLOOD_CONCURRENCY)))
        done.set()
        await watching
    return counts, bodies, worst_heartbeat


def test_probe_flood_stays_correct_and_the_loop_keeps_ticking(etcd: EtcdHarness) -> None:
    sidecar = etcd.sidecars[1]
    polls_before = sidecar.status()["polls"]
    counts, bodies, worst_heartbeat = asyncio.run(_flood(sidecar.url))
    polls_after = sidecar.status()["polls"]
    assert counts == {200: FLOOD_REQUESTS}, counts
    assert all(body.startswith(b'{"ready": true') for body in bodies), bodies
    assert polls_after > polls_before, "the poll loop went on during the flood"
    liveness_timeout = 30.0  # the agent's default AGENT_LIVENESS_TIMEOUT_SECONDS
    assert worst_heartbeat < liveness_timeout, worst_heartbeat
    print(f"flood: {FLOOD_REQUESTS} probes at concurrency {FLOOD_CONCURRENCY}, "
          f"polls {polls_before}→{polls_after}, worst heartbeat age {worst_heartbeat:.3f} s")
    assert sidecar.livez()[0] == 200


def test_the_alert_tests_feed_series_as_a_live_sidecar_exports_them(etcd: EtcdHarness) -> None:
    """The series tests/static/alerts/rules_test.yaml gives the chart's alerts carry the
    names and labels a running sidecar's /metrics has: a metric or label renamed in the
    agent fails here, not silently in production."""
    exported: dict[str, set[str]] = {}
    text = httpx.get(f"{etcd.sidecars[1].url}/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            exported.setdefault(sample.name, set()).update(sample.labels)
    fed = [series["series"] for test in yaml.safe_load(ALERT_TESTS.read_text())["tests"]
           for series in test["input_series"]]
    ours = [s for s in fed if s.startswith("sts_agent_")]
    assert len(ours) >= 6
    for series in ours:
        match = re.fullmatch(r"(\w+)\{(.*)\}", series)
        assert match is not None, series
        name, labels = match[1], set(re.findall(r'(\w+)="[^"]*"', match[2]))
        assert name in exported, f"{name} is not in the sidecar's /metrics"
        assert labels - TARGET_LABELS == exported[name], series
