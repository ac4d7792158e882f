"""What the stores' pre-start work shares: addresses, peers' state before a bootstrap, old data."""

from __future__ import annotations

import asyncio
import datetime
import itertools
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import httpx
import structlog

from agent.addresses import host_port
from agent.config.settings import Settings
from agent.discovery import Peer, ServiceNames
from agent.errors import ConfigError
from agent.identity import PodIdentity
from agent.quorum import bootstrap_blocker
from agent.registry import store_spec

log = structlog.get_logger(__name__)
B = TypeVar("B")  # a store's ballot


def move_aside(path: Path, *, keep: int = 1) -> tuple[Path, list[Path]]:
    """Rename ``path`` to ``<path>.removed-<UTC stamp>`` beside it (works when the data
    dir itself is a mount point, which cannot be renamed), then delete the older copies
    this function made (names of exactly that form) beyond the ``keep`` newest, the new
    one always among them. Anything else beside it is left alone. A copy that cannot be
    deleted is logged and kept: the copies are for forensics, never worth failing init.
    Returns (the new copy's path, the copies deleted)."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.removed-{stamp}")
    for again in itertools.count(2):  # two moves within one second
        if not target.exists():
            break
        target = path.with_name(f"{path.name}.removed-{stamp}-{again}")
    path.rename(target)
    pattern = re.compile(re.escape(path.name) + r"\.removed-(\d{8}T\d{6}Z)(?:-(\d+))?")
    older = []
    for copy in path.parent.iterdir():
        found = pattern.fullmatch(copy.name)
        if found is not None and copy != target:
            older.append(((found[1], int(found[2] or 1)), copy))
    older.sort(reverse=True)  # newest first: by stamp, then by the number within a second
    deleted = []
    for _, copy in older[max(keep - 1, 0):]:
        try:
            if copy.is_dir() and not copy.is_symlink():
                shutil.rmtree(copy)
            else:
                copy.unlink()
        except OSError as exc:
            log.warning("moved_aside_copy_kept", copy=str(copy), error=str(exc))
            continue
        deleted.append(copy)
    return target, deleted


class PrestartBase:
    """Addresses for one store's init work, as the store will advertise them."""

    store: ClassVar[str]  # the registered name, for the default ports
    reads_config: ClassVar[bool] = False  # see Prestart

    def __init__(self, settings: Settings, names: ServiceNames, pod: PodIdentity) -> None:
        self.settings = settings
        self.names = names
        self.pod = pod
        spec = store_spec(self.store)
        self.peer_port = settings.peer_port or spec.peer_port
        self.client_port = settings.client_port or spec.client_port
        # Bootstrap members shown to have no raft state during this init (bootstrap_blocker).
        self.proven_empty: set[str] = set()

    def host(self, ordinal: int, peers: Sequence[Peer]) -> str | None:
        """Pod ``ordinal``'s stable name, or its address (``advertise: ip``) when known."""
        if self.settings.advertise == "fqdn":
            return self.names.pod_fqdn(ordinal)
        if ordinal == self.pod.ordinal:
            return self.settings.pod_ip
        found = next((p for p in peers if p.ordinal == ordinal and p.addresses), None)
        return found.addresses[0] if found is not None else None

    @staticmethod
    def url(host: str, port: int) -> str:
        return f"http://{host_port(host, port)}"

    def init_url(self, host: str) -> str:
        """A peer's GET /init on the agent's port, saying who asks."""
        return f"{self.url(host, self.settings.listen_address()[1])}/init?from={self.pod.name}"

    def has_state(self) -> bool:
        """Whether this pod's data dir holds the store's raft state (what init tells its
        peers on GET /init while it runs)."""
        raise NotImplementedError

    def init_document(self) -> dict[str, Any]:
        """What this init tells its peers on GET /init while it runs (read per request)."""
        return {"has_state": self.has_state()}

    def peer_asked(self, name: str) -> None:
        """A peer asked this init's GET /init before bootstrapping: only a member with no
        raft state asks, so it had none (recorded for the rest of this init)."""
        self.proven_empty.add(name)

    async def ballots_of(self, client: httpx.AsyncClient, ordinals: Sequence[int],
                         peers: Sequence[Peer], parse: Callable[[Any], B | None],
                         own: B) -> dict[int, B]:
        """The ballots the other pods' inits answer now (GET /init's ``ballot``, read by
        ``parse``; one naming another ordinal is ignored), and ``own``."""
        asked = [(o, self.init_url(host)) for o in ordinals if o != self.pod.ordinal
                 and (host := self.host(o, peers)) is not None]
        answers = await asyncio.gather(*(peer_init(client, url) for _, url in asked))
        result = {}
        for (ordinal, _), answer in zip(asked, answers, strict=True):
            ballot = parse((answer or {}).get("ballot"))
            if ballot is not None and getattr(ballot, "ordinal", None) == ordinal:
                result[ordinal] = ballot
        result[self.pod.ordinal] = own
        return result

    async def warn_event(self, reason: str, message: str) -> None:
        """A Warning Event on this pod (failures only logged: init's exit says it too)."""
        if not (self.settings.namespace and self.settings.pod_name):
            return
        from agent.kube import Kube

        kube = Kube(self.settings)
        try:
            await kube.event(reason=reason, message=message, warning=True)
        finally:
            await kube.aclose()

    async def kept_ordinals(self) -> range:
        """The ordinals the StatefulSet keeps, from the API, for a vote every one of them
        must join; ConfigError unless its pods start in parallel (OrderedReady never
        creates pod 1 while pod 0 waits for its ballot)."""
        from agent.kube import Kube, import_client

        await asyncio.to_thread(import_client)  # the event loop serves GET /init meanwhile
        statefulset = self.settings.statefulset_name() or self.pod.statefulset
        kube = Kube(self.settings)
        try:
            replicas, start, policy = await kube.pod_management(statefulset)
        finally:
            await kube.aclose()
        if policy != "Parallel":
            raise ConfigError(f"{self.store}: StatefulSet {statefulset} has "
                              f"podManagementPolicy {policy}; recovery after a full outage "
                              "needs Parallel (with OrderedReady pod 1 is never created "
                              "while pod 0 waits for the vote)")
        return range(start, start + replicas)

    async def bootstrap_blocker(self, peers: Sequence[Peer],
                                stores: Mapping[int, bool] | None = None) -> str | None:
        """Why this member, with no state, may not bootstrap now, or None when every other
        bootstrap member is proven to have none.

        ``stores``: what peers' stores said just now (ordinal -> holds raft state). Else a
        peer is proven empty once, during this init, its init container said so (GET
        /init on the agent's port, answered while init runs) or it asked ours: a first
        start's inits end at different times, and a member that bootstrapped first is
        silent until its cluster has a quorum. A peer with none of these counts as
        possibly holding state: after a whole-cluster outage it may be a member not
        back yet."""
        known: dict[int, bool | None] = dict(stores or {})
        names = {ordinal: f"{self.pod.statefulset}-{ordinal}"
                 for ordinal in self.settings.bootstrap_ordinals()
                 if ordinal != self.pod.ordinal}
        ask: dict[int, str] = {}
        for ordinal, name in names.items():
            host = self.host(ordinal, peers)
            if name in self.proven_empty and not known.get(ordinal):
                known[ordinal] = False
            elif ordinal not in known and host is not None:
                ask[ordinal] = self.init_url(host)
        timeout = httpx.Timeout(self.settings.store_timeout_seconds)
        async with httpx.AsyncClient(timeout=timeout) as client:
            answers = await asyncio.gather(*(_init_says(client, url) for url in ask.values()))
        known.update(zip(ask, answers, strict=True))
        self.proven_empty.update(names[o] for o, held in known.items()
                                 if held is False and o in names)
        return bootstrap_blocker({name: known.get(o) for o, name in names.items()})


async def peer_init(client: httpx.AsyncClient, url: str) -> dict[str, Any] | None:
    """What a peer's init container answers on GET /init; None when it does not answer
    (not running: not started yet, or done and its store not up yet) or answers garbage."""
    try:
        response = await client.get(url)
        response.raise_for_status()
        document = response.json()
    except (httpx.HTTPError, ValueError):
        return None
    return document if isinstance(document, dict) else None


async def _init_says(client: httpx.AsyncClient, url: str) -> bool | None:
    """What a peer's init container says of its raft state; None when it does not
    answer or answers garbage."""
    held = (await peer_init(client, url) or {}).get("has_state")
    return held if isinstance(held, bool) else None
