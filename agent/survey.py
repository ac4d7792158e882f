"""Asking a cluster through its members' APIs: which members answer, and the leader's own view.

Every function takes ``ask``, a store's ``view`` (bounded by the caller's timeout), so the
same rules serve the sidecar's poll, the leave and init's pre-start work of every store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

from agent.errors import AgentError
from agent.model import ClusterView, Member

Ask = Callable[[str], Awaitable[ClusterView]]


async def try_view(ask: Ask, url: str) -> ClusterView | str:
    """The view of the node at ``url``, or why it could not be read."""
    try:
        return await ask(url)
    except AgentError as exc:
        return exc.message


async def answering(ask: Ask, members: Iterable[Member]) -> set[str]:
    """Ids of the members that answer: those the store reports reachable, and those it
    says nothing of whose API answers now. One the store reports unreachable is not asked."""
    return set(await progress(ask, members))


async def progress(ask: Ask, members: Iterable[Member], *,
                   started: dict[str, float | None] | None = None) -> dict[str, int | None]:
    """The members that answer (as ``answering``), each with the raft index it has
    applied when it was asked (None when the store vouched for it without a read); into
    ``started``, when given, when each one asked says its store process started."""
    listed = list(members)
    known: dict[str, int | None] = {m.id: None for m in listed if m.reachable}
    unknown = [m for m in listed if m.reachable is None and m.api_url]
    results = await asyncio.gather(*(try_view(ask, m.api_url or "") for m in unknown))
    for member, result in zip(unknown, results, strict=True):
        if isinstance(result, ClusterView):
            known[member.id] = result.applied_index
            if started is not None:
                started[member.id] = result.started_at
    return known


@dataclass(frozen=True, slots=True)
class Leader:
    """The leader's own view (membership's truth), where it answers, and how it was found."""

    view: ClusterView
    url: str
    via: str


async def leader_through(ask: Ask, urls: Sequence[str]) -> Leader | str:
    """The leader's own view, found through the first of ``urls`` (peers, asked at once)
    that knows a leader; a view counts only when its node says it leads. Else why not."""
    if not urls:
        return "no known peers to ask"
    results = await asyncio.gather(*(try_view(ask, url) for url in urls))
    for url, result in zip(urls, results, strict=True):
        if not isinstance(result, ClusterView) or result.leader_id is None:
            continue
        if result.leads:
            return Leader(result, url, f"peer {url}")
        leader = result.leader
        if leader is None or not leader.api_url:
            continue
        found = await try_view(ask, leader.api_url)
        if isinstance(found, ClusterView) and found.leads:
            return Leader(found, leader.api_url, f"leader {leader.api_url} via peer {url}")
    return "no peer knows a reachable leader"
