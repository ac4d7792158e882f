"""The agent's Kubernetes calls (lightkube) against the stand-in API: shapes, auth, errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config.settings import Settings
from agent.errors import KubeError
from agent.kube import Kube
from player.kubeapi import KubeApi

pytestmark = pytest.mark.integration


@pytest.fixture
def api(tmp_path: Path) -> Iterator[KubeApi]:
    server = KubeApi(tmp_path).start()
    server.add_statefulset("rqlite", replicas=3, namespace="prod")
    yield server
    server.stop()


def kube(api: KubeApi, **overrides: object) -> Kube:
    settings = Settings(pod_name="rqlite-2", namespace="prod", kube_api_url=api.url,
                        kube_token_file=api.token_file, **overrides)  # type: ignore[arg-type]
    return Kube(settings)


async def test_replicas_and_scale(api: KubeApi) -> None:
    client = kube(api)
    assert await client.statefulset_scale("rqlite") == (3, 0)
    api.scale("rqlite", 2, namespace="prod")
    assert await client.statefulset_scale("rqlite") == (2, 0)
    await client.aclose()


async def test_rotated_token_is_reread_after_401(api: KubeApi) -> None:
    client = kube(api)
    assert await client.statefulset_scale("rqlite") == (3, 0)
    api.rotate_token()  # the kubelet rotates the projected token file
    assert await client.statefulset_scale("rqlite") == (3, 0)
    statuses = [status for _, _, status in api.requests]
    assert statuses == [200, 401, 200], statuses
    await client.aclose()


async def test_missing_statefulset_and_api_down_are_kube_errors(api: KubeApi) -> None:
    client = kube(api)
    with pytest.raises(KubeError, match="404"):
        await client.statefulset_scale("nope")
    api.available = False
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


async def test_event_in_the_real_shape(api: KubeApi) -> None:
    client = kube(api)
    await client.event(reason="MemberRemoved", message="rqlite-2 removed")
    await client.event(reason="MemberRemoveFailed", message="deadline", warning=True)
    first, second = api.events
    assert first["involvedObject"] == {"kind": "Pod", "name": "rqlite-2", "namespace": "prod",
                                       "apiVersion": "v1"}
    assert first["type"] == "Normal" and second["type"] == "Warning"
    assert first["source"] == {"component": "sts-agent"}
    assert first["metadata"]["name"].startswith("rqlite-2.")
    await client.aclose()


async def test_event_failure_is_logged_not_raised(api: KubeApi) -> None:
    client = kube(api)
    api.available = False
    await client.event(reason="MemberRemoved", message="x")  # must not raise
    assert api.events == []
    await client.aclose()
