"""What a store folder offers, by capability: Backend, then what the backend *is*.

A store lives in ``agent/stores/<name>/`` and is enrolled by one line in
``agent/registry.py``. Its folder turns the store's API into the value types of
``agent.model``; raw JSON never leaves it. The rest of the agent sees a store only
through these protocols, so the leave, the readiness verdict and the quorum rules are
the same code for every store.

Errors: a store adapter raises only ``BackendUnavailable`` (the store did not answer,
timed out, answered 5xx, or refused a change it may accept later: the caller retries)
and ``BackendError`` (it answered something unusable, or refused for good: 4xx,
garbage, a wrong shape). No httpx exception ever escapes a store folder.

Capabilities, not flags: the sidecar and the leave ask what a backend is, never its
name. ``Reconfigurable`` (raft: removal through the leader, hand-off) or ``Departing`` (a
member leaves by stopping: Galera's clean stop, an exec store's stop hook); optionally
``Promotable``, ``Mendable``, ``Started`` (the agent starts the store) and ``SlowView``.

Time: every method makes a bounded number of requests, each bounded by the client's
timeout (``AGENT_STORE_TIMEOUT_SECONDS``); callers add their own deadline around loops.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

if TYPE_CHECKING:
    import httpx

    from agent.config.settings import Settings
    from agent.discovery import Peer, ServiceNames
    from agent.identity import PodIdentity
    from agent.kube import Kube
    from agent.leave import Events
    from agent.membership import Membership
    from agent.metrics import Metrics
    from agent.model import ClusterView, Outcome, Snapshot


@runtime_checkable
class Reconfigurable(Protocol):
    """A raft store: membership changes through the leader, for the leave and the repair.

    - ``remove(member_id, leader_url=...)`` removes a member through the leader (or any
      member, where the store forwards). Idempotent: removing a member that is already
      gone is success. A rejection the store may lift later (another change in flight,
      not leader, unhealthy cluster) raises BackendUnavailable, so the caller retries;
      a refusal for good (no permission) raises BackendError. The caller confirms the
      removal by reading membership again: success here only means "sent and accepted".
    - ``transfer_leadership(leader_url=..., target_id=...)`` asks the leader to hand
      off to ``target_id``; ``can_transfer`` says whether the store supports it over its
      API at all (when False, the method raises BackendError). Not idempotent in effect
      (each call may move leadership), so callers check who leads before asking.
    """

    can_transfer: ClassVar[bool]

    async def remove(self, member_id: str, *, leader_url: str) -> None: ...

    async def transfer_leadership(self, *, leader_url: str, target_id: str) -> None: ...


class Backend(Protocol):
    """A store adapter: thin async methods over an injected ``httpx.AsyncClient``.

    - ``__init__(client, base_url, peer_api_port=...)`` does no I/O. ``base_url`` is this
      pod's store API; ``peer_api_port`` the other members' API port, for a store that
      does not report their API addresses (Consul); the others ignore it.
    - ``view(api_url=None)`` reads one store node's API (this pod's by default, or the
      node at ``api_url``) and returns that node's ClusterView, whose ``self_id`` is the
      answering node. Read-only, idempotent and safe at any rate (the sidecar calls it
      every poll, for itself, the leader and sometimes every peer). A few requests per
      call, so it takes at most a few client timeouts. Raises ``BackendUnavailable``
      when the node does not answer (refused, timeout, 5xx) and ``BackendError`` when it
      answers something unusable.
    """

    name: ClassVar[str]

    def __init__(self, client: httpx.AsyncClient, base_url: str, *,
                 peer_api_port: int | None = None,
                 settings: Settings | None = None) -> None: ...

    async def view(self, api_url: str | None = None) -> ClusterView: ...


@runtime_checkable
class Promotable(Protocol):
    """A store with learners (non-voting members that catch up first): the sidecar
    promotes its own node once it has caught up (``agent.promote``).

    ``promote(member_id, via=...)`` asks the member at ``via`` (the leader) to make
    ``member_id`` a voter. Idempotent: promoting a voter is success. "Not caught up yet"
    raises BackendUnavailable (the next poll tries again).
    """

    async def promote(self, member_id: str, *, via: str) -> None: ...


@runtime_checkable
class Mendable(Protocol):
    """A store whose node the sidecar nudges after each poll (Consul: a server back on a
    new address re-joins the LAN pool until the cluster takes the address; Galera: the
    seed's bootstrap flag dropped, a stuck node marked for its liveness probe).

    ``mend(snapshot, events)`` acts only on what the poll that just ended showed (the
    backend's view of its own node, the ``Snapshot``); it is rate-limited, idempotent
    and changes no membership; store trouble is logged, not raised. ``events`` (None
    outside Kubernetes) says on the pod what it did."""

    async def mend(self, snapshot: Snapshot, events: Events | None) -> None: ...


@dataclass(frozen=True, slots=True)
class SidecarContext:
    """What a store's sidecar parts (its departure, its starter) are built from."""

    settings: Settings
    client: httpx.AsyncClient  # the store client (timeouts, TLS and auth from settings)
    kube: Kube
    metrics: Metrics
    membership: Membership
    domain: str | None  # the cluster domain


class LeaveContext(Protocol):
    """What a departure may use of the leave in progress (``agent.leave.Leaver``)."""

    @property
    def membership(self) -> Membership: ...

    @property
    def ordinal(self) -> int | None: ...

    @property
    def keep(self) -> range | None:
        """The ordinals the StatefulSet keeps, when the decision read them."""
        ...

    @property
    def deadline_seconds(self) -> float: ...

    def clock(self) -> float: ...

    async def obstacle(self, reason: str) -> None:
        """Say why the leave waits (once per reason), then wait a jittered retry."""
        ...

    def record(self, reason: str, message: str, *, warning: bool = False) -> None:
        """Post an Event on the pod, in the background."""
        ...

    def departing(self, view: ClusterView, self_id: str) -> set[str]:
        """Other members whose pods the StatefulSet no longer keeps."""
        ...

    async def reachable(self, view: ClusterView, *,
                        started: dict[str, float | None] | None = None
                        ) -> dict[str, int | None]:
        """The members that answer now, with the index each has applied (and into
        ``started`` when each one's store started, where the store says)."""
        ...


class Departure(Protocol):
    """How a member leaves its cluster, once the leave has decided it goes for good.

    - ``before_restart(leave)``: the pod only restarts; a leader may hand off first
      (bounded, best effort). The member it handed to, or None.
    - ``remove(leave)``: take this member out (or let it go), waiting through
      ``leave.obstacle`` until it is safe; the reason it is done. Cancelled at the leave's
      deadline; RemovalDenied when the store refuses for good.
    - ``settle(leave, removed)``: after a final trigger (the sidecar's SIGTERM) removed
      the member; may confirm it and return another outcome.
    """

    removed_event: str  # the Event posted once ``remove`` is done

    async def before_restart(self, leave: LeaveContext) -> str | None: ...

    async def remove(self, leave: LeaveContext) -> str: ...

    async def settle(self, leave: LeaveContext, removed: Outcome) -> Outcome: ...


@runtime_checkable
class Departing(Protocol):
    """A store whose member leaves by stopping (Galera's clean stop, an exec store's stop
    hook), not by a removal through a leader: its folder says how."""

    def departure(self, context: SidecarContext) -> Departure: ...


class Starter(Protocol):
    """The store process the sidecar starts and watches (an exec store's start hooks)."""

    async def run(self, stop: asyncio.Event) -> None: ...

    async def terminate(self, timeout_seconds: float) -> bool: ...

    def as_dict(self) -> dict[str, Any]: ...


@runtime_checkable
class Started(Protocol):
    """A store the agent starts itself (the sidecar runs its ``Starter``); ``status_parts``
    are added to /status."""

    def starter(self, context: SidecarContext) -> Starter: ...

    def status_parts(self, starter: Starter) -> dict[str, Any]: ...


@runtime_checkable
class SlowView(Protocol):
    """A store whose ``view`` takes longer than one request (an exec store runs hooks):
    the longest one view may take, in seconds."""

    def view_seconds(self) -> float: ...


Rediscover = Callable[[], Awaitable[list["Peer"]]]


class Prestart(Protocol):
    """``sts-agent init``'s work for a store that needs it before it starts (etcd: join
    as a learner; rqlite: drop stale entries), run once per init container.

    ``prepare(peers, deadline=..., rediscover=...)`` decides how this node starts (a new
    cluster, a restart, a join), makes the membership changes that must precede the
    start, and returns the template variables the store's config needs. It must be safe
    to run again after a crash at any point (an init container is retried): every
    change it makes is idempotent or checked first. It never bootstraps a cluster while
    a peer holds one, nor while a bootstrap member has not said it has no state (each
    init answers ``init_document()``, ``has_state`` at least, on GET /init while it
    runs, and hears ``peer_asked``). It waits, re-reading DNS through ``rediscover``,
    until the start is safe or ``deadline`` (a ``time.monotonic()`` value) passes, then raises an
    AgentError naming what it waited for; nothing is written in that case.
    """

    # Whether prepare() reads the rendered config (an exec store's hooks do): init
    # renders once before it, and again after with prepare()'s variables.
    reads_config: ClassVar[bool]

    def __init__(self, settings: Settings, names: ServiceNames, pod: PodIdentity,
                 client: httpx.AsyncClient) -> None: ...

    def has_state(self) -> bool: ...

    def init_document(self) -> dict[str, Any]: ...

    def peer_asked(self, name: str) -> None: ...

    async def prepare(self, peers: Sequence[Peer], *, deadline: float,
                      rediscover: Rediscover) -> dict[str, Any]: ...
