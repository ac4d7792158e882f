"""Every registered store against the contracts of agent.storekit.capabilities: the registry says
what exists, so a new store is held to these without editing them."""

from __future__ import annotations

import socket

import httpx
import pytest
import respx

from agent.errors import AgentError
from agent.registry import STORES
from agent.storekit.capabilities import Promotable, Reconfigurable

# Stores spoken to over HTTP (httpx): Galera's status is SQL (tests/unit/stores/galera).
HTTP_STORES = sorted(name for name, spec in STORES.items() if spec.scheme == "http")


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
@pytest.mark.parametrize("store", HTTP_STORES)
@respx.mock
async def test_no_httpx_exception_leaks(store: str, error: type[Exception]) -> None:
    """Whatever httpx raises while talking to a store comes out as one of our errors, from
    every method of the contract."""
    respx.route().mock(side_effect=error("boom"))
    leader = "http://leader:1"
    async with httpx.AsyncClient() as client:
        backend = STORES[store].backend_class()(client, "http://store:1")
        with pytest.raises(AgentError):
            await backend.view()
        if isinstance(backend, Reconfigurable):
            with pytest.raises(AgentError):
                await backend.remove("member-1", leader_url=leader)
            with pytest.raises(AgentError):
                await backend.transfer_leadership(leader_url=leader, target_id="member-2")
        if isinstance(backend, Promotable):
            with pytest.raises(AgentError):
                await backend.promote("member-1", via=leader)


@pytest.mark.parametrize("store", HTTP_STORES)
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
