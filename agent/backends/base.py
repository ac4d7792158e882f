"""The Backend protocol every store adapter implements, and the value types they return."""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import httpx

from agent.errors import BackendError, BackendUnavailable


@dataclass(frozen=True, slots=True)
class Member:
    """One server in the store's raft configuration."""

    id: str
    name: str
    address: str  # raft / peer address as the store reports it
    api_url: str | None = None  # client API base URL, when the store reports one
    voter: bool = True  # False: learner (etcd) or non-voter (rqlite)
    reachable: bool | None = None  # None: the store does not say and we did not probe


@dataclass(frozen=True, slots=True)
class ClusterView:
    """What the store said, at one moment. Raw JSON never leaves ``backends/``."""

    members: tuple[Member, ...]
    leader_id: str | None
    self_id: str | None
    applied_index: int | None = None  # this node's applied raft index
    commit_index: int | None = None  # the leader's commit index (best known)
    version: str | None = None
    notes: tuple[str, ...] = field(default=())  # what the backend could not learn, and why

    @property
    def self_member(self) -> Member | None:
        return self.member(self.self_id) if self.self_id is not None else None

    @property
    def leader(self) -> Member | None:
        return self.member(self.leader_id) if self.leader_id is not None else None

    def member(self, member_id: str) -> Member | None:
        return next((m for m in self.members if m.id == member_id), None)

    @property
    def voters(self) -> tuple[Member, ...]:
        return tuple(m for m in self.members if m.voter)

    @property
    def lag(self) -> int | None:
        """Entries this node has yet to apply, when both indexes are known."""
        if self.applied_index is None or self.commit_index is None:
            return None
        return max(0, self.commit_index - self.applied_index)

    def as_dict(self) -> dict[str, Any]:
        return {
            "members": [
                {"id": m.id, "name": m.name, "address": m.address, "api_url": m.api_url,
                 "voter": m.voter, "reachable": m.reachable}
                for m in self.members
            ],
            "leader_id": self.leader_id,
            "self_id": self.self_id,
            "applied_index": self.applied_index,
            "commit_index": self.commit_index,
            "lag": self.lag,
            "version": self.version,
            "notes": list(self.notes),
        }


class Reconfigurable(Protocol):
    """Membership changes, for the leave procedure.

    - ``remove(member_id, leader_url=...)`` removes a member through the leader (or any
      member, where the store forwards). Removing a member that is already gone is
      success. A rejection the store may lift later (another change in flight, not
      leader, unhealthy cluster) raises BackendUnavailable, so the caller retries.
    - ``transfer_leadership(leader_url=..., target_id=...)`` asks the leader to hand
      off to ``target_id``; ``can_transfer`` says whether the store supports it over
      its API at all.
    """

    can_transfer: ClassVar[bool]

    async def remove(self, member_id: str, *, leader_url: str) -> None: ...

    async def transfer_leadership(self, *, leader_url: str, target_id: str) -> None: ...


class Backend(Reconfigurable, Protocol):
    """A store adapter. Thin async methods over an injected ``httpx.AsyncClient``.

    Contract:
    - ``view(api_url=None)`` reads one store node's API (this pod's by default, or
      the node at ``api_url``) and returns that node's ClusterView, whose
      ``self_id`` is the answering node. It is read-only and safe to call
      at any rate. It finishes within the client's timeout per request (a few
      requests per call). It raises ``BackendUnavailable`` when the local store does
      not answer (connection refused, timeout, 5xx) and ``BackendError`` when it
      answers something unusable (garbage JSON, unexpected shape, 4xx). No httpx
      exception escapes.
    """

    name: ClassVar[str]
    default_url: ClassVar[str]

    def __init__(self, client: httpx.AsyncClient, base_url: str, *,
                 peer_api_port: int | None = None) -> None:
        """``peer_api_port``: the other members' API port, for a store that does not
        report their API addresses (Consul); the others ignore it."""
        ...

    async def view(self, api_url: str | None = None) -> ClusterView:
        """The view of the store at ``api_url`` (default: this pod's store)."""
        ...


def decode_json(response: httpx.Response, what: str) -> Any:
    """The JSON body of a 2xx response, or the right error for anything else."""
    if response.status_code >= 500:
        raise BackendUnavailable(f"{what}: HTTP {response.status_code}")
    if response.status_code >= 400:
        raise BackendError(f"{what}: HTTP {response.status_code}: {response.text[:200]!r}")
    try:
        return json.loads(response.content)
    except ValueError:
        raise BackendError(f"{what}: not JSON: {response.text[:200]!r}") from None


async def request(
    client: httpx.AsyncClient, method: str, url: str, what: str, **kwargs: Any
) -> httpx.Response:
    """Send one request; transport failures become BackendUnavailable."""
    try:
        return await client.request(method, url, **kwargs)
    except httpx.TimeoutException:
        raise BackendUnavailable(f"{what}: timed out") from None
    except httpx.TransportError as exc:
        failure = _resolution_failure(exc)
        if failure is not None:
            # Peers are asked by their DNS names: say so when DNS is what failed.
            raise BackendUnavailable(f"{what}: cannot resolve {httpx.URL(url).host} "
                                     f"(DNS: {failure.strerror})") from None
        raise BackendUnavailable(f"{what}: {type(exc).__name__}: {exc}") from None
    except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
        # InvalidURL is not an HTTPError: a member advertising a bad URL lands here.
        raise BackendError(f"{what}: {type(exc).__name__}: {exc}") from None


def _resolution_failure(exc: BaseException) -> socket.gaierror | None:
    """The name-resolution error behind a transport failure, if that is what it was."""
    seen: BaseException | None = exc
    for _ in range(8):  # httpx -> httpcore -> OSError; bounded against cycles
        if seen is None:
            return None
        if isinstance(seen, socket.gaierror):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def need(mapping: Any, key: str, what: str, kind: type | tuple[type, ...] = object) -> Any:
    """``mapping[key]`` checked for presence and type, else BackendError naming it."""
    if not isinstance(mapping, Mapping):
        raise BackendError(f"{what}: expected an object, got {type(mapping).__name__}")
    if key not in mapping:
        raise BackendError(f"{what}: missing field {key!r}")
    value = mapping[key]
    if not isinstance(value, kind):
        raise BackendError(f"{what}: field {key!r} has type {type(value).__name__}")
    return value


def optional(mapping: Mapping[str, Any], key: str, what: str, kind: type | tuple[type, ...],
             default: Any) -> Any:
    """``mapping[key]`` when present and not null, checked for type; else ``default``."""
    value = mapping.get(key)
    if value is None:
        return default
    if not isinstance(value, kind):
        raise BackendError(f"{what}: field {key!r} has type {type(value).__name__}")
    return value


def as_int(value: Any, what: str) -> int:
    """A uint64 that may arrive as a decimal string (grpc-gateway) or a JSON number."""
    if isinstance(value, bool):
        raise BackendError(f"{what}: expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise BackendError(f"{what}: expected an integer, got {value!r}")
