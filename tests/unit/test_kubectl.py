"""`kubectl sts-agent status`: rows from pods and their sidecars' /status, the API server
mocked (respx) behind a kubeconfig as kubectl reads it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
import yaml

from agent.kubectl import main, row_of, table

API = "https://api.example:6443"
NS = "/api/v1/namespaces/db"


def pod(name: str, *, ready: bool = True, ip: str | None = "10.0.0.1",
        deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-06T10:00:00Z"
    return {"metadata": meta,
            "spec": {"containers": [{"name": "agent", "ports": [{"name": "agent",
                                                                 "containerPort": 9191}]}]},
            "status": {"phase": "Running", **({"podIP": ip} if ip else {}),
                       "conditions": [{"type": "Ready",
                                       "status": "True" if ready else "False"}]}}


MEMBERS = [{"id": "a", "name": "etcd-0", "voter": True},
           {"id": "b", "name": "etcd-1", "voter": True},
           {"id": "c", "name": "etcd-2", "voter": False}]


def status(self_id: str, **more: Any) -> dict[str, Any]:
    return {"verdict": {"ready": True, "checks": [{"name": "member", "ok": True,
                                                   "reason": "ok"}]},
            "view": {"self_id": self_id, "lag": 0, "local": {"version": "3.6.16"},
                     "authority": {"members": MEMBERS, "leader_id": "a"}},
            "repair": None, "leave": None, **more}


def test_rows_say_role_voter_leave_repair_and_why_not_ready() -> None:
    leader = row_of(pod("etcd-0"), status("a", repair={
        "waiting": {"etcd-3": "pod etcd-3 may still run it"}, "blocked": None}), None)
    assert (leader.member, leader.voter, leader.role, leader.version, leader.lag) == (
        True, True, "leader", "3.6.16", 0)
    assert leader.repair == "etcd-3: pod etcd-3 may still run it"
    learner = row_of(pod("etcd-2", ready=False), status("c", verdict={"ready": False, "checks": [
        {"name": "member", "ok": True, "reason": "ok"},
        {"name": "caught_up", "ok": False, "reason": "learner, 40 entries behind"}]}), None)
    assert (learner.role, learner.ready, learner.reason) == (
        "learner", False, "caught_up: learner, 40 entries behind")
    leaving = row_of(pod("etcd-1", deleting=True), status("b", leave={
        "result": "stayed", "reason": "not a scale-down", "took_seconds": 0.1}), None)
    assert (leaving.phase, leaving.leave) == ("Terminating", "stayed: not a scale-down")
    leaderless = status("b")
    leaderless["view"]["authority"] = {"members": MEMBERS, "leader_id": None}
    assert row_of(pod("etcd-1"), leaderless, None).role is None
    outsider = row_of(pod("etcd-4"), status("z"), None)
    assert (outsider.member, outsider.role) == (False, None)
    silent = row_of(pod("etcd-5", ip=None), None, "no address yet")
    assert silent.cells()[3:] == ("-",) * 7 + ("no address yet",)


def test_table_aligns_columns_and_leaves_the_reason_last() -> None:
    text = table([row_of(pod("etcd-0"), status("a"), None),
                  row_of(pod("etcd-10"), None, "no /status: 503")])
    head, first, second = text.splitlines()
    assert head.split() == ["POD", "PHASE", "READY", "MEMBER", "VOTER", "ROLE", "LAG",
                            "VERSION", "LEAVE", "REPAIR", "REASON"]
    assert head.index("PHASE") == first.index("Running") == second.index("Running")
    assert second.endswith("no /status: 503")


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "k", "cluster": {"server": API,
                                                "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "secret-token"}}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u",
                                               "namespace": "db"}}]}))
    return path


@respx.mock(assert_all_called=True)
def test_status_reads_each_sidecar_through_the_pod_proxy(
        respx_mock: respx.MockRouter, kubeconfig: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    respx_mock.get(f"{API}/apis/apps/v1/namespaces/db/statefulsets/etcd").respond(
        json={"spec": {"selector": {"matchLabels": {"app.kubernetes.io/name": "etcd"}}}})
    pods = respx_mock.get(f"{API}{NS}/pods", params={
        "labelSelector": "app.kubernetes.io/name=etcd"}).respond(
        json={"items": [pod("etcd-1"), pod("etcd-0")]})
    first = respx_mock.get(f"{API}{NS}/pods/etcd-0:9191/proxy/status").respond(
        json=status("a"))
    respx_mock.get(f"{API}{NS}/pods/etcd-1:9191/proxy/status").respond(
        503, json={"kind": "Status", "message": "no endpoints available"})
    assert main(["status", "etcd", "--kubeconfig", str(kubeconfig), "-o", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["namespace"] == "db"
    assert [p["pod"] for p in out["pods"]] == ["etcd-0", "etcd-1"]
    assert out["pods"][0]["role"] == "leader"
    assert out["pods"][1]["member"] is None
    assert out["pods"][1]["reason"].endswith("503 no endpoints available")
    assert pods.calls.last.request.headers["Authorization"] == "Bearer secret-token"
    assert first.called


@respx.mock(assert_all_called=True)
def test_a_statefulset_not_there_is_said_with_the_api_s_words(
        respx_mock: respx.MockRouter, kubeconfig: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    respx_mock.get(f"{API}/apis/apps/v1/namespaces/other/statefulsets/etcd").respond(
        404, json={"kind": "Status", "message": 'statefulsets.apps "etcd" not found'})
    assert main(["status", "etcd", "-n", "other", "--kubeconfig", str(kubeconfig)]) == 1
    assert 'statefulsets.apps "etcd" not found' in capsys.readouterr().err


def test_no_kubeconfig_is_said(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "etcd", "--kubeconfig", str(tmp_path / "none")]) == 1
    assert "no usable kubeconfig" in capsys.readouterr().err


@respx.mock(assert_all_called=True)
def test_the_kubeconfig_is_found_as_kubectl_finds_it(
        respx_mock: respx.MockRouter, kubeconfig: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """$KUBECONFIG's first file that exists (kubectl's own order), the context's namespace."""
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'absent'}:{kubeconfig}")
    monkeypatch.setenv("HOME", str(tmp_path))
    respx_mock.get(f"{API}/apis/apps/v1/namespaces/db/statefulsets/etcd").respond(
        404, json={"kind": "Status", "message": "not found"})
    assert main(["status", "etcd"]) == 1
    assert "404 not found" in capsys.readouterr().err


@respx.mock(assert_all_called=True)
def test_an_unreachable_api_server_is_said(respx_mock: respx.MockRouter, kubeconfig: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    respx_mock.get(f"{API}/apis/apps/v1/namespaces/db/statefulsets/etcd").mock(
        side_effect=httpx.ConnectError("connection refused"))
    assert main(["status", "etcd", "--kubeconfig", str(kubeconfig)]) == 1
    assert "connection refused" in capsys.readouterr().err
