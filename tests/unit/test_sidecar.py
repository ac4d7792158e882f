"""The sidecar's composition root: parts by capability, secrets kept out, default seeds."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, cast

import httpx
import pytest

import agent.sidecar
from agent.config.settings import Settings
from agent.kube import Kube
from agent.reconfigure import RaftDeparture
from agent.registry import STORES, StoreSpec
from agent.sidecar import build, check_update_strategy, default_seeds, redact
from agent.storekit.capabilities import Departing, Reconfigurable, Started
from tests.unit.fakestore.api import FakeBackend


def test_store_url_credentials_redacted() -> None:
    assert redact("http://agent:s3cret@127.0.0.1:4001") == "http://***@127.0.0.1:4001"
    assert redact("http://127.0.0.1:4001/a@b") == "http://127.0.0.1:4001/a@b"


def test_default_seeds_from_stable_names() -> None:
    settings = Settings(backend="etcd", pod_name="etcd-3", service="etcd", namespace="prod")
    assert default_seeds(settings, "cluster.local") == [
        f"http://etcd-{o}.etcd.prod.svc.cluster.local:2379" for o in range(3)]
    # spec.ordinals.start 1: no etcd-0 is asked, it never exists.
    shifted = Settings(backend="etcd", pod_name="etcd-1", service="etcd", namespace="prod",
                       ordinals_start=1)
    assert default_seeds(shifted, "cluster.local") == [
        f"http://etcd-{o}.etcd.prod.svc.cluster.local:2379" for o in (2, 3)]
    explicit = Settings(backend="etcd", seed_urls="http://a:1, http://b:2/")
    assert default_seeds(explicit, "cluster.local") == ["http://a:1", "http://b:2"]
    assert default_seeds(Settings(backend="etcd"), "cluster.local") == []


async def test_a_new_non_raft_store_needs_only_its_folder_and_a_registry_line(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A store registered like the five (one spec: its ports, its backend by name) whose
    backend is Departing: the sidecar takes its departure, runs no repair (only a
    Reconfigurable backend is repaired through a leader), and a leave for good is its
    departure's. No shared module knows the store."""
    monkeypatch.setitem(STORES, "fake", StoreSpec(
        "fake", client_port=7000, peer_port=7001, removal_seconds=1.0,
        backend="tests.unit.fakestore.api:FakeBackend", raft=False))
    settings = Settings(backend="fake", pod_name="fake-0", namespace="db",
                        leave_policy="always", listen="127.0.0.1:19090")
    async with httpx.AsyncClient() as client:
        parts = build(settings, client, domain="cluster.local")
        backend = parts.membership.backend
        assert isinstance(backend, FakeBackend) and isinstance(backend, Departing)
        assert parts.repairer is None and parts.starter is None
        assert parts.leaver.departure is backend.departures[-1]
        outcome = await parts.leaver.leave(final=True)
        await parts.kube.aclose()
    assert outcome.result == "removed" and outcome.reason == "stopped cleanly"
    assert backend.departures[-1].calls == ["remove", "settle"]


async def test_each_registered_store_gets_the_departure_its_backend_offers() -> None:
    """The five: raft stores leave through their leader, the others by their own
    departure; the repair runs for the raft ones only."""
    for name, spec in STORES.items():
        extra: dict[str, Any] = {}
        if name == "exec":
            extra = {"exec_hooks": {h: {"command": ["true"]} for h in
                                    ("sequence", "seed", "primary", "status")}}
        settings = Settings(backend=name, pod_name=f"{name}-0", namespace="db",
                            listen="127.0.0.1:19090")
        options = spec.options_class()
        if options is not None:
            settings = settings.with_options(options(**extra))
        async with httpx.AsyncClient() as client:
            parts = build(settings, client, domain="cluster.local")
            await parts.kube.aclose()
        raft = isinstance(parts.leaver.departure, RaftDeparture)
        assert raft == isinstance(parts.membership.backend, Reconfigurable), name
        assert (parts.repairer is not None) == raft, name
        assert (parts.starter is not None) == isinstance(parts.membership.backend, Started)


async def test_the_update_strategy_check_imports_the_api_client_off_the_event_loop(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The check starts with the sidecar; the client's import (seconds on a busy node)
    must not hold the first poll: here the import ends only once the event loop has run
    something else meanwhile (it would wait out its 5 s bound, then end, on the loop)."""
    order: list[str] = []
    released = threading.Event()

    def slow_import() -> None:
        released.wait(timeout=5)
        order.append("imported")

    class Api:
        async def rolling_update(self, statefulset: str) -> tuple[int, int]:
            return 3, 1

    monkeypatch.setattr(agent.sidecar, "import_client", slow_import)
    check = asyncio.create_task(check_update_strategy(cast(Kube, Api()), "etcd"))
    await asyncio.sleep(0)  # the check's first step: its import begins
    order.append("the loop ran")
    released.set()
    assert await check is None  # one unavailable of three: safe
    assert order == ["the loop ran", "imported"]


async def test_an_api_client_that_cannot_be_imported_leaves_the_check_unread(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing depends on the check: a failed import is said (update_strategy_unread),
    not raised into a task nobody reads until the pod's end."""
    def broken() -> None:
        raise ImportError("No module named 'lightkube'")

    class Api:
        async def rolling_update(self, statefulset: str) -> tuple[int, int]:
            raise AssertionError("read without a client")

    monkeypatch.setattr(agent.sidecar, "import_client", broken)
    assert await check_update_strategy(cast(Kube, Api()), "etcd") is None
