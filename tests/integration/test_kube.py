"""The agent's Kubernetes calls (lightkube) against the real API server, as the agent's
ServiceAccount with the Role of k8s/base: shapes, RBAC, tokens, errors."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest

from agent.config.settings import Settings
from agent.errors import KubeError
from agent.kube import Kube
from agent.metrics import Metrics
from agent.sidecar import check_update_strategy
from player.agentnamespace import AgentNamespace
from tests.integration.kubeproxy import KubeFaultProxy

pytestmark = pytest.mark.integration


def kube(namespace: AgentNamespace, url: str | None = None, **overrides: object) -> Kube:
    env = namespace.env(url)
    settings = Settings(pod_name="rqlite-2", namespace=namespace.name,
                        kube_api_url=env["AGENT_KUBE_API_URL"],
                        kube_token_file=namespace.token_file,
                        kube_ca_file=env.get("AGENT_KUBE_CA_FILE"),
                        **overrides)  # type: ignore[arg-type]
    return Kube(settings)


async def test_replicas_and_scale(agent_namespace: AgentNamespace) -> None:
    agent_namespace.add_statefulset("rqlite", replicas=3)
    client = kube(agent_namespace)
    assert await client.statefulset_scale("rqlite") == (3, 0)
    agent_namespace.scale("rqlite", 2)
    assert await client.statefulset_scale("rqlite") == (2, 0)
    await client.aclose()


async def test_ordinals_start_is_read(agent_namespace: AgentNamespace) -> None:
    agent_namespace.add_statefulset("rqlite", replicas=3, start=1)
    client = kube(agent_namespace)
    assert await client.statefulset_scale("rqlite") == (3, 1)
    await client.aclose()


def test_the_role_grants_nothing_more(agent_namespace: AgentNamespace) -> None:
    """The Role allows GET of StatefulSets and pods and creating Events; the API server
    refuses a list of either, and another namespace's objects."""
    agent_namespace.add_statefulset("rqlite", replicas=3)
    plane = agent_namespace.control_plane
    headers = {"Authorization": f"Bearer {agent_namespace.token_file.read_text()}"}
    base = f"/apis/apps/v1/namespaces/{agent_namespace.name}/statefulsets"
    verify = ssl.create_default_context(cafile=str(plane.ca))
    with httpx.Client(base_url=plane.server, verify=verify, headers=headers,
                      trust_env=False) as client:
        assert client.get(f"{base}/rqlite").status_code == 200
        assert client.get(base).status_code == 403
        assert client.get("/apis/apps/v1/namespaces/default/statefulsets/rqlite"
                          ).status_code == 403
        assert client.delete(f"{base}/rqlite").status_code == 403
        pods = f"/api/v1/namespaces/{agent_namespace.name}/pods"
        assert client.get(f"{pods}/rqlite-0").status_code == 404  # allowed, and absent
        assert client.get(pods).status_code == 403
        assert client.delete(f"{pods}/rqlite-0").status_code == 403
        assert client.get("/api/v1/namespaces/default/pods/rqlite-0").status_code == 403


async def test_a_pod_is_read_and_an_absent_one_is_none(
        agent_namespace: AgentNamespace) -> None:
    """What the repair reads of a pod: phase, UID, and None for a pod that does not
    exist (the API server's NotFound naming it)."""
    agent_namespace.admin.create("v1", "pods", {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "rqlite-1", "namespace": agent_namespace.name},
        "spec": {"serviceAccountName": "sts-agent",
                 "containers": [{"name": "store", "image": "store"}]}},
        namespace=agent_namespace.name)
    client = kube(agent_namespace)
    pod = await client.pod("rqlite-1")
    assert pod is not None and pod.phase == "Pending" and pod.uid
    assert pod.deleting_since is None
    assert await client.pod("rqlite-2") is None
    await client.aclose()


async def test_rotated_token_is_reread_after_401(agent_namespace: AgentNamespace,
                                                 kube_proxy: KubeFaultProxy) -> None:
    agent_namespace.add_statefulset("rqlite", replicas=3)
    client = kube(agent_namespace, kube_proxy.url)
    assert await client.statefulset_scale("rqlite") == (3, 0)
    # The kubelet rotates the projected token file; the old token is refused from now on.
    kube_proxy.revoked.add(agent_namespace.token_file.read_text())
    agent_namespace.write_token(agent_namespace.mint_token())
    assert await client.statefulset_scale("rqlite") == (3, 0)
    assert kube_proxy.statuses("statefulsets") == [200, 401, 200]
    await client.aclose()


async def test_missing_statefulset_and_api_down_are_kube_errors(
        agent_namespace: AgentNamespace, kube_proxy: KubeFaultProxy) -> None:
    client = kube(agent_namespace, kube_proxy.url)
    with pytest.raises(KubeError, match="404"):
        await client.statefulset_scale("nope")
    kube_proxy.available = False
    with pytest.raises(KubeError, match="503"):
        await client.statefulset_scale("rqlite")
    await client.aclose()


async def test_unreachable_api(tmp_path: Path) -> None:
    settings = Settings(pod_name="rqlite-2", namespace="prod",
                        kube_api_url="http://127.0.0.1:9", kube_token_file=tmp_path / "t",
                        kube_timeout_seconds=1)
    (tmp_path / "t").write_text("x")
    with pytest.raises(KubeError, match="GET statefulset rqlite"):
        await Kube(settings).statefulset_scale("rqlite")


async def test_event_in_the_real_shape(agent_namespace: AgentNamespace) -> None:
    client = kube(agent_namespace)
    await client.event(reason="MemberRemoved", message="rqlite-2 removed")
    await client.event(reason="MemberRemoveFailed", message="deadline", warning=True)
    first, second = agent_namespace.events()
    assert first["involvedObject"] == {"kind": "Pod", "name": "rqlite-2",
                                       "namespace": agent_namespace.name, "apiVersion": "v1"}
    assert first["type"] == "Normal" and second["type"] == "Warning"
    assert first["reason"] == "MemberRemoved" and first["message"] == "rqlite-2 removed"
    assert first["source"] == {"component": "sts-agent"}
    assert first["metadata"]["name"].startswith("rqlite-2.")
    await client.aclose()


@pytest.mark.parametrize(("max_unavailable", "warned"), [(None, False), (1, False), (2, True),
                                                      ("50%", True)])
async def test_an_update_strategy_that_breaks_quorum_is_warned_of(
        agent_namespace: AgentNamespace, max_unavailable: int | str | None,
        warned: bool) -> None:
    """At start the sidecar reads the StatefulSet's rollingUpdate.maxUnavailable as the
    real API server keeps it and says so in a Warning Event when a rollout could restart
    more of the 3 members at once than quorum spares."""
    agent_namespace.add_statefulset("rqlite", replicas=3, max_unavailable=max_unavailable)
    client = kube(agent_namespace)
    defaulted = 1 if max_unavailable is None else max_unavailable  # the API server's default
    assert await client.rolling_update("rqlite") == (3, defaulted)
    problem = await check_update_strategy(client, "rqlite")
    await client.aclose()
    events = [(e["type"], e["reason"], e["message"]) for e in agent_namespace.events()]
    if warned:
        assert problem is not None and "restart 2 of 3 members at once" in problem
        assert events == [("Warning", "UnsafeUpdateStrategy", problem)]
    else:
        assert (problem, events) == (None, [])


async def test_event_failure_is_logged_not_raised(agent_namespace: AgentNamespace,
                                                  kube_proxy: KubeFaultProxy) -> None:
    """An Event the API refuses is not raised, and is counted all the same in
    sts_agent_events_total (the alerts' source: the decision was taken)."""
    client = kube(agent_namespace, kube_proxy.url)
    metrics = Metrics()
    client.on_event = metrics.count_event
    await client.event(reason="MemberRemoved", message="x")
    kube_proxy.available = False
    await client.event(reason="MemberRemoveFailed", message="x", warning=True)  # no raise
    assert [e["reason"] for e in agent_namespace.events()] == ["MemberRemoved"]
    counted = {(labels["reason"], labels["type"]): value for labels, value in (
        (sample.labels, sample.value) for family in metrics.registry.collect()
        if family.name == "sts_agent_events" for sample in family.samples
        if sample.name == "sts_agent_events_total")}
    assert counted == {("MemberRemoved", "Normal"): 1.0, ("MemberRemoveFailed", "Warning"): 1.0,
                       ("MemberRepairBlocked", "Warning"): 0.0,
                       ("UnsafeUpdateStrategy", "Warning"): 0.0}
    await client.aclose()
