"""rqlite through its HTTP API: /status for raft state, /nodes for members and reachability."""

from __future__ import annotations

import asyncio
import datetime
from typing import TYPE_CHECKING, Any, ClassVar

import httpx

from agent.errors import BackendError
from agent.model import ClusterView, Member
from agent.storekit.http import answered, as_int, decode_json, need, optional, request

if TYPE_CHECKING:
    from agent.config.settings import Settings


def parse_nodes(payload: Any) -> tuple[Member, ...]:
    """Members from /nodes: the ver=2 list shape or the legacy id-keyed object."""
    what = "rqlite /nodes"
    if isinstance(payload, dict) and isinstance(payload.get("nodes"), list):
        entries = [(None, raw) for raw in payload["nodes"]]
    elif isinstance(payload, dict):
        entries = list(payload.items())
    else:
        raise BackendError(f"{what}: expected an object, got {type(payload).__name__}")
    members = []
    for key, raw in entries:
        where = f"{what} node {key or '?'}"
        if not isinstance(raw, dict):
            raise BackendError(f"{where}: expected an object")
        node_id = raw.get("id") or key
        if not isinstance(node_id, str) or not node_id:
            raise BackendError(f"{where}: no id")
        members.append(
            Member(
                id=node_id,
                name=node_id,
                address=str(raw.get("addr") or ""),
                api_url=str(raw.get("api_addr")) if raw.get("api_addr") else None,
                voter=bool(raw.get("voter", True)),
                reachable=bool(raw["reachable"]) if "reachable" in raw else None,
            )
        )
    return tuple(sorted(members, key=lambda m: m.id))


def parse_status(payload: Any) -> dict[str, Any]:
    """This node's id, leader, configuration and raft indexes from /status."""
    what = "rqlite /status"
    store = need(payload, "store", what, dict)
    raft = need(store, "raft", f"{what} store", dict)
    leader = store.get("leader") or {}
    leader_id = leader.get("node_id") if isinstance(leader, dict) else None
    configuration = []
    for raw in optional(store, "nodes", f"{what} store", list, []):
        if isinstance(raw, dict) and raw.get("id"):
            configuration.append(
                Member(id=str(raw["id"]), name=str(raw["id"]), address=str(raw.get("addr") or ""),
                       voter=raw.get("suffrage", "Voter") == "Voter")
            )
    build = payload.get("build") if isinstance(payload.get("build"), dict) else {}
    node = payload.get("node") if isinstance(payload.get("node"), dict) else {}
    # hashicorp/raft's index of the latest configuration entry, committed or not: a
    # leader takes a configuration as its own when it appends it.
    latest = raft.get("latest_configuration_index")
    return {
        "self_id": str(need(store, "node_id", f"{what} store", str)),
        "leader_id": str(leader_id) if leader_id else None,
        "applied_index": as_int(need(raft, "applied_index", f"{what} raft"), f"{what} applied"),
        "commit_index": as_int(need(raft, "commit_index", f"{what} raft"), f"{what} commit"),
        "configuration": tuple(configuration),
        "configuration_index": None if latest is None
        else as_int(latest, f"{what} latest_configuration_index"),
        "version": str(build.get("version")) if build.get("version") else None,
        "started_at": started_at(node.get("start_time")),
    }


def started_at(raw: Any) -> float | None:
    """rqlited's start (``node.start_time``, RFC 3339 with nanoseconds) in epoch
    seconds; None when absent or not a time (it only orders a hand-off's targets)."""
    if not isinstance(raw, str):
        return None
    try:
        return datetime.datetime.fromisoformat(raw).timestamp()
    except ValueError:
        return None


def build_view(status_payload: Any, nodes_payload: Any | None) -> ClusterView:
    """A ClusterView of the node that answered both requests.

    Members come from /nodes (with API URLs and reachability) when given, else
    from the raft configuration in /status.
    """
    status = parse_status(status_payload)
    members = parse_nodes(nodes_payload) if nodes_payload is not None else status["configuration"]
    return ClusterView(
        members=members,
        leader_id=status["leader_id"],
        self_id=status["self_id"],
        applied_index=status["applied_index"],
        commit_index=status["commit_index"],
        version=status["version"],
        started_at=status["started_at"],
    )


class RqliteBackend:
    """Reads one rqlite node's view; ``api_url`` picks another node to ask."""

    name: ClassVar[str] = "rqlite"

    def __init__(self, client: httpx.AsyncClient, base_url: str, *,
                 peer_api_port: int | None = None,
                 settings: Settings | None = None) -> None:
        del peer_api_port  # every member reports its own client URL
        self.client = client
        self.base_url = base_url.rstrip("/")

    async def _get(self, base: str, path: str) -> Any:
        url = f"{base.rstrip('/')}{path}"
        response = await request(self.client, "GET", url, f"rqlite {url}")
        return decode_json(response, f"rqlite {url}")

    # POST /leader (rqlite 8.43+, the 'leader-ops' permission): hashicorp/raft's
    # leadership transfer to a named voter, the same as -raft-shutdown-stepdown does at
    # shutdown. Without it, a leader removed by a scale-down stops leading only when the
    # new configuration is committed, and the others sit out an election timeout.
    can_transfer: ClassVar[bool] = True

    async def remove(self, member_id: str, *, leader_url: str) -> None:
        """DELETE /remove on the leader; a follower answers with a redirect (retried)."""
        url = f"{leader_url.rstrip('/')}/remove"
        response = await request(self.client, "DELETE", url, f"rqlite {url}",
                                 json={"id": member_id})
        answered(response, "rqlite", f"removing {member_id}",
                 needs="the agent's user needs the 'remove' permission")

    async def transfer_leadership(self, *, leader_url: str, target_id: str) -> None:
        """POST /leader?wait on the leader: returns once ``target_id`` leads."""
        url = f"{leader_url.rstrip('/')}/leader?wait"
        response = await request(self.client, "POST", url, f"rqlite {url}",
                                 json={"id": target_id})
        if response.status_code in (404, 405):
            raise BackendError(f"rqlite has no leadership transfer (HTTP "
                               f"{response.status_code}: rqlite 8.43 or later has one)")
        answered(response, "rqlite", f"moving leadership to {target_id}",
                 needs="the agent's user needs the 'leader-ops' permission")

    async def uncommitted_configuration(self, leader_url: str) -> str | None:
        """Why the leader's configuration is not yet to be trusted, or None: a leader
        lists the servers of a change it has appended but not yet committed (a removal
        sent to a leader that had lost its quorum, say); should it lose its leadership
        before the commit, the next leader may list them as before."""
        status = parse_status(await self._get(leader_url, "/status"))
        latest, commit = status["configuration_index"], status["commit_index"]
        if latest is not None and latest > commit:
            return (f"the leader's configuration (index {latest}) is not committed yet "
                    f"(commit index {commit})")
        return None

    async def view(self, api_url: str | None = None) -> ClusterView:
        base = api_url or self.base_url
        # /nodes contacts every node; bound that below our own request timeout, so one
        # dead node makes it report "unreachable" instead of timing out the whole call.
        budget = self.client.timeout.read or 2.0
        probe_ms = max(50, int(budget * 500))
        status, nodes = await asyncio.gather(
            self._get(base, "/status"),
            self._get(base, f"/nodes?nonvoters&ver=2&timeout={probe_ms}ms"),
        )
        return build_view(status, nodes)
