"""Every registered store against the contracts of agent.stores.base: the registry says
what exists, so a new store is held to these without editing them."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest
import respx

from agent.errors import AgentError
from agent.stores.registry import STORES, store_spec

ROOT = Path(__file__).resolve().parents[3]


def test_every_store_folder_is_registered_and_every_registered_store_has_one() -> None:
    folders = {p.name for p in (ROOT / "agent" / "stores").iterdir()
               if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == set(STORES)


@pytest.mark.parametrize("store", sorted(STORES))
def test_spec_loads_its_classes_from_its_own_folder(store: str) -> None:
    spec = store_spec(store)
    assert spec.name == store
    backend = spec.backend_class()
    assert backend.__module__.startswith(f"agent.stores.{store}.")
    assert backend.name == store
    assert isinstance(backend.can_transfer, bool)
    prestart = spec.prestart_class()
    if prestart is not None:
        assert prestart.__module__.startswith(f"agent.stores.{store}.")
    assert spec.default_url == f"http://127.0.0.1:{spec.client_port}"
    assert 0 < spec.client_port < 65536 and 0 < spec.peer_port < 65536
    assert spec.removal_seconds > 0


def test_unknown_store_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="known: " + ", ".join(STORES)):
        store_spec("zookeeper")


@pytest.mark.parametrize("store", sorted(STORES))
def test_every_store_has_a_test_folder_and_a_harness(store: str) -> None:
    """Where a new store must also be enrolled: its unit tests (with the real answers the
    parser property tests use), the player's harness, and a k8s example."""
    assert (ROOT / "tests" / "unit" / "stores" / store / "answers.py").is_file()
    assert (ROOT / "player" / "stores" / f"{store}.py").is_file()
    assert (ROOT / "k8s" / store / "kustomization.yaml").is_file()


def _all_subclasses(cls: type[Exception]) -> list[type[Exception]]:
    found = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_all_subclasses(sub))
    return found


REQUEST_ERRORS = [c for c in _all_subclasses(httpx.RequestError)
                  if c not in (httpx.TransportError, httpx.TimeoutException,
                               httpx.NetworkError, httpx.ProtocolError)]


@pytest.mark.parametrize("error", REQUEST_ERRORS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("store", sorted(STORES))
@respx.mock
async def test_no_httpx_exception_leaks(store: str, error: type[Exception]) -> None:
    """Whatever httpx raises while talking to a store comes out as one of our errors."""
    respx.route().mock(side_effect=error("boom"))
    async with httpx.AsyncClient() as client:
        with pytest.raises(AgentError):
            await STORES[store].backend_class()(client, "http://store:1").view()


@pytest.mark.parametrize("store", sorted(STORES))
async def test_dns_failure_is_named(store: str) -> None:
    """A peer asked by its DNS name while DNS is down: the reason says DNS, not a bare
    ConnectError; any other connection failure keeps its own name. (httpx's own mock
    transport: the failure's cause chain, which respx drops, is what is read.)"""
    def transport(request: httpx.Request) -> httpx.Response:
        if request.url.host == "10.0.0.9":
            raise httpx.ConnectError("refused", request=request)
        try:
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        except socket.gaierror as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc

    async with httpx.AsyncClient(transport=httpx.MockTransport(transport)) as client:
        subject = STORES[store].backend_class()(client, "http://127.0.0.1:1")
        with pytest.raises(AgentError) as caught:
            await subject.view("http://etcd-1.etcd.ns.svc.cluster.local:2379")
        with pytest.raises(AgentError) as refused:
            await subject.view("http://10.0.0.9:2379")
    assert ("cannot resolve etcd-1.etcd.ns.svc.cluster.local "
            "(DNS: Temporary failure in name resolution)") in caught.value.message
    assert "DNS" not in refused.value.message and "ConnectError: refused" in refused.value.message
