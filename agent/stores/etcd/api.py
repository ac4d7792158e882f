"""etcd through its v3 JSON gateway: member list and maintenance status (3.4 to 3.6)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, ClassVar

import httpx

from agent.errors import BackendError, BackendUnavailable
from agent.model import ClusterView, Member
from agent.storekit.http import answered, as_int, decode_json, need, optional, request

if TYPE_CHECKING:
    from agent.config.settings import Settings


def parse_members(payload: Any) -> tuple[str, tuple[Member, ...]]:
    """(responding member id, members) from a /v3/cluster/member/list answer."""
    what = "etcd member/list"
    header = need(payload, "header", what, dict)
    responder = str(as_int(need(header, "member_id", what), f"{what} header.member_id"))
    members = []
    for index, raw in enumerate(need(payload, "members", what, list)):
        where = f"{what} members[{index}]"
        member_id = str(as_int(need(raw, "ID", where), f"{where}.ID"))
        peer_urls = raw.get("peerURLs") or []
        client_urls = raw.get("clientURLs") or []
        if not isinstance(peer_urls, list) or not isinstance(client_urls, list):
            raise BackendError(f"{where}: peerURLs/clientURLs must be lists")
        members.append(
            Member(
                id=member_id,
                name=str(raw.get("name") or ""),  # empty until an added member first starts
                address=str(peer_urls[0]) if peer_urls else "",
                api_url=str(client_urls[0]) if client_urls else None,
                voter=not bool(raw.get("isLearner", False)),
            )
        )
    return responder, tuple(members)


def parse_status(payload: Any) -> dict[str, Any]:
    """Leader id, applied and committed index, version from /v3/maintenance/status."""
    what = "etcd maintenance/status"
    if not isinstance(payload, dict):
        raise BackendError(f"{what}: expected an object, got {type(payload).__name__}")
    # The gateway leaves zero values out: no "leader" means leader 0, i.e. none.
    leader = as_int(payload.get("leader", 0), f"{what}.leader")
    applied_raw = payload.get("raftAppliedIndex")
    return {
        "leader_id": str(leader) if leader else None,  # 0 means no leader
        "commit_index": as_int(payload.get("raftIndex", 0), f"{what}.raftIndex"),
        "applied_index": (as_int(applied_raw, f"{what}.raftAppliedIndex")
                          if applied_raw is not None else None),
        "version": str(payload.get("version") or "") or None,
        "errors": [str(e) for e in optional(payload, "errors", what, list, [])],
    }


def build_view(members_payload: Any | None, status_payload: Any) -> ClusterView:
    """One ClusterView from the two answers of the same member.

    ``members_payload`` is None for a learner, which refuses to list members: the view
    then has no members, and the caller learns them from another member.
    """
    status = parse_status(status_payload)
    if members_payload is None:
        header = need(status_payload, "header", "etcd maintenance/status", dict)
        responder = str(as_int(need(header, "member_id", "etcd status header"), "member_id"))
        members: tuple[Member, ...] = ()
    else:
        responder, members = parse_members(members_payload)
    return ClusterView(
        members=members,
        leader_id=status["leader_id"],
        self_id=responder,
        applied_index=status["applied_index"],
        commit_index=status["commit_index"],
        version=status["version"],
        notes=tuple(f"etcd reports: {e}" for e in status["errors"]),
    )


class EtcdBackend:
    """Reads one etcd member's view; ``api_url`` picks another member to ask."""

    name: ClassVar[str] = "etcd"

    def __init__(self, client: httpx.AsyncClient, base_url: str, *,
                 peer_api_port: int | None = None,
                 settings: Settings | None = None) -> None:
        del peer_api_port  # every member reports its own client URL
        self.client = client
        self.base_url = base_url.rstrip("/")

    can_transfer: ClassVar[bool] = True

    async def _send(self, base: str, path: str, body: dict[str, Any]) -> httpx.Response:
        url = f"{base.rstrip('/')}{path}"
        return await request(self.client, "POST", url, f"etcd {url}", json=body)

    async def _post(self, base: str, path: str, body: dict[str, Any]) -> Any:
        """POST and decode the JSON answer (errors as in ``decode_json``)."""
        response = await self._send(base, path, body)
        return decode_json(response, f"etcd {response.request.url}")

    async def remove(self, member_id: str, *, leader_url: str) -> None:
        """``member remove``; etcd forwards it to the leader. "member not found" is success."""
        response = await self._send(leader_url, "/v3/cluster/member/remove", {"ID": member_id})
        if "member not found" in response.text[:300]:
            return
        # Else unhealthy cluster, not enough started members, a change in flight: retryable.
        answered(response, "etcd", f"removing {member_id}")

    async def transfer_leadership(self, *, leader_url: str, target_id: str) -> None:
        """``move-leader`` to ``target_id``; must be sent to the current leader."""
        response = await self._send(leader_url, "/v3/maintenance/transfer-leadership",
                                    {"targetID": target_id})
        if response.status_code != 200:
            raise BackendUnavailable(f"etcd refused moving leadership to {target_id}: HTTP "
                                     f"{response.status_code}: {response.text[:300]}")

    async def add_learner(self, peer_url: str, *, via: str) -> Member:
        """``member add --learner``; if the URL is already a member (a retried add), that
        member is returned instead of an error."""
        response = await self._send(via, "/v3/cluster/member/add",
                                    {"peerURLs": [peer_url], "isLearner": True})
        if response.status_code != 200:
            text = response.text[:300]
            if "already exist" in text:  # "peer URLs already exists" or "member ID already exist"
                _, members = parse_members(await self._post(via, "/v3/cluster/member/list", {}))
                existing = next((m for m in members if m.address == peer_url), None)
                if existing is not None:
                    return existing
            raise BackendUnavailable(f"etcd refused adding {peer_url}: HTTP "
                                     f"{response.status_code}: {text}")
        payload = decode_json(response, "etcd member/add")
        raw = need(payload, "member", "etcd member/add", dict)
        return Member(id=str(as_int(need(raw, "ID", "etcd member/add"), "member ID")),
                      name=str(raw.get("name") or ""), address=peer_url, voter=False)

    async def promote(self, member_id: str, *, via: str) -> None:
        """``member promote``; "not in sync with leader" is retryable, a member that is
        a voter already is success."""
        response = await self._send(via, "/v3/cluster/member/promote", {"ID": member_id})
        if response.status_code == 200:
            return
        text = response.text[:300]
        if "can only promote a learner member" in text and "in sync" not in text:
            return  # a voter already: promoted by an earlier attempt
        raise BackendUnavailable(f"etcd refused promoting {member_id}: HTTP "
                                 f"{response.status_code}: {text}")

    async def view(self, api_url: str | None = None) -> ClusterView:
        base = api_url or self.base_url
        answers: tuple[Any, Any] = await asyncio.gather(
            self._post(base, "/v3/cluster/member/list", {}),
            self._post(base, "/v3/maintenance/status", {}),
            return_exceptions=True,
        )
        members, status = answers
        if isinstance(status, BaseException):
            raise status
        if isinstance(members, BaseException):
            learner = isinstance(status, dict) and status.get("isLearner") is True
            # A learner refuses to list members: "rpc not supported for learner", as
            # HTTP 503 (gRPC Unavailable) up to 3.5, HTTP 400 (FailedPrecondition) in 3.6.
            refused = isinstance(members, BackendUnavailable) or (
                isinstance(members, BackendError) and "for learner" in str(members))
            if not (learner and refused):
                raise members
            members = None
        return build_view(members, status)
