"""An exec node's view: from its status (and members) hooks, or its agent's /status (no I/O)."""

from __future__ import annotations

from typing import Any

from agent.errors import BackendError
from agent.model import ClusterView, Member
from agent.stores.exec.contract import HookResult, Role, tail


def status_check(role: Role, result: HookResult | None, failures: int,
                 threshold: int) -> str | None:
    """Why the node is not ready by its ``status``, or None when it runs."""
    if role.running:
        return None
    if role is Role.STOPPED:
        return "store stopped (status hook exited 7)"
    said = result.why() if result is not None else "status hook never ran"
    return f"store failed: {said} ({failures} runs in a row, threshold {threshold})"


def local_view(self_id: str, role: Role, *, check: str | None,
               details: tuple[tuple[str, str | int], ...],
               members: ClusterView | None = None) -> ClusterView:
    """This node's view. With a ``members`` answer, its membership and indexes; else the
    node is its own authority (no leader to ask: the store's ``status`` is its word)."""
    checks = (("exec_status", check),)
    if members is not None:
        return ClusterView(members=members.members, leader_id=members.leader_id,
                           self_id=members.self_id or self_id,
                           applied_index=members.applied_index,
                           commit_index=members.commit_index, version=members.version,
                           checks=checks, details=details)
    me = Member(id=self_id, name=self_id, address=self_id, reachable=True)
    return ClusterView(members=(me,), leader_id=self_id, self_id=self_id, applied_index=0,
                       commit_index=0, checks=checks, details=details,
                       notes=("no members hook: the status hook's word is the membership",))


def _int(raw: Any, what: str) -> int | None:
    if raw is None:
        return None
    if not isinstance(raw, int) or isinstance(raw, bool) or raw < 0:
        raise BackendError(f"members hook: {what} must be a non-negative integer, got {raw!r}")
    return raw


def _text(raw: Any, what: str, *, required: bool = True) -> str | None:
    if raw is None and not required:
        return None
    if not isinstance(raw, str) or not raw:
        raise BackendError(f"members hook: {what} must be a non-empty string, got {raw!r}")
    return raw


def _host(address: str) -> str:
    """The host of ``address`` (``host:port``, ``scheme://host:port/...``, or a host)."""
    rest = address.split("://", 1)[-1].split("/", 1)[0]
    host, sep, port = rest.rpartition(":")
    return host if sep and port.isdigit() else rest


def members_view(document: Any, *, agent_port: int) -> ClusterView:
    """The ``members`` hook's JSON: ``{"members": [{"id", "name", "address", "voter",
    "api_url"?}], "leader": id|null, "self": id, "applied_index"?, "commit_index"?}``.
    A member's ``api_url`` is its agent (default ``http://<address's host>:<agent
    port>``): a peer's view comes from its agent. BackendError naming what is wrong."""
    if not isinstance(document, dict):
        raise BackendError(f"members hook: expected a JSON object, got {type(document).__name__}")
    raw_members = document.get("members")
    if not isinstance(raw_members, list) or not raw_members:
        raise BackendError("members hook: 'members' must be a non-empty list")
    members = []
    for index, raw in enumerate(raw_members):
        if not isinstance(raw, dict):
            raise BackendError(f"members hook: members[{index}] is not an object")
        member_id = _text(raw.get("id"), f"members[{index}].id")
        address = _text(raw.get("address"), f"members[{index}].address")
        assert member_id is not None and address is not None
        name = _text(raw.get("name"), f"members[{index}].name", required=False) or member_id
        voter = raw.get("voter", True)
        if not isinstance(voter, bool):
            raise BackendError(f"members hook: members[{index}].voter must be true or false")
        api_url = _text(raw.get("api_url"), f"members[{index}].api_url", required=False)
        if api_url is None:
            api_url = f"http://{_host(address)}:{agent_port}"
        members.append(Member(id=member_id, name=name, address=address, api_url=api_url,
                              voter=voter))
    ids = [m.id for m in members]
    if len(set(ids)) != len(ids):
        raise BackendError(f"members hook: member ids repeat ({', '.join(ids)})")
    leader = _text(document.get("leader"), "leader", required=False)
    self_id = _text(document.get("self"), "self")
    if leader is not None and leader not in ids:
        raise BackendError(f"members hook: leader {leader!r} is not among the members")
    return ClusterView(members=tuple(members), leader_id=leader, self_id=self_id,
                       applied_index=_int(document.get("applied_index"), "applied_index"),
                       commit_index=_int(document.get("commit_index"), "commit_index"),
                       version=_text(document.get("version"), "version", required=False))


def role_in_status(document: Any) -> Role | None:
    """What an exec agent's /status says its node is (None: it does not say)."""
    try:
        details = document["view"]["local"]["details"]
        return Role(details["role"])
    except (KeyError, TypeError, ValueError):
        return None


def peer_view(document: Any, url: str) -> ClusterView:
    """A peer's view as its agent reported it on /status; BackendError when it has none."""
    try:
        local = document["view"]["local"]
    except (KeyError, TypeError):
        local = None
    if not isinstance(local, dict):
        raise BackendError(f"{url}: the agent reports no view of its store")
    try:
        members = tuple(Member(id=str(m["id"]), name=str(m["name"]), address=str(m["address"]),
                               api_url=m.get("api_url"), voter=bool(m.get("voter", True)),
                               reachable=m.get("reachable"))
                        for m in local["members"])
        checks = tuple((str(name), None if why == "ok" else str(why))
                       for name, why in (local.get("checks") or {}).items())
        details = tuple((str(k), v) for k, v in (local.get("details") or {}).items()
                        if isinstance(v, str | int))
        return ClusterView(members=members, leader_id=local.get("leader_id"),
                           self_id=local.get("self_id"),
                           applied_index=local.get("applied_index"),
                           commit_index=local.get("commit_index"),
                           version=local.get("version"), checks=checks, details=details)
    except (KeyError, TypeError, AttributeError) as exc:
        raise BackendError(f"{url}: the agent's view is malformed ({exc!r})") from None


def summary(result: HookResult) -> str:
    """A status run in a few words, for the details /status shows."""
    return tail(result.stdout or result.stderr, 200)
