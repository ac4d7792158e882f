"""Consul servers through the HTTP API: raft configuration, autopilot health, agent leave."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

import httpx
import structlog

from agent.addresses import host_port, parse_host_port
from agent.errors import BackendError, BackendUnavailable
from agent.model import ClusterView, Member, Snapshot
from agent.storekit.http import answered, as_int, decode_json, need, request

if TYPE_CHECKING:
    from agent.config.settings import Settings
    from agent.leave import Events

log = structlog.get_logger("agent.consul")

LEAVE_TIMEOUT_SECONDS = 30.0
# While Consul's own leave runs, how often the leader's raft configuration is read.
LEAVE_POLL_SECONDS = 0.2
# A server back on a new address joins again this often until the cluster takes it.
REJOIN_SECONDS = 2.0


def _api_url(raft_address: str, api_port: int, scheme: str) -> str | None:
    """A server's HTTP API, guessed from its raft address: same host, our API port
    (Consul does not publish other servers' HTTP addresses)."""
    host, sep, _ = raft_address.rpartition(":")
    return f"{scheme}://{host}:{api_port}" if sep and host else None


def parse_configuration(payload: Any, *, api_port: int, scheme: str
                        ) -> tuple[tuple[Member, ...], str | None]:
    """Members and the leader's id from /v1/operator/raft/configuration."""
    what = "consul raft configuration"
    servers = need(payload, "Servers", what, list)
    members, leader = [], None
    for raw in servers:
        if not isinstance(raw, dict) or not isinstance(raw.get("ID"), str) or not raw["ID"]:
            raise BackendError(f"{what}: a server without an ID")
        address = str(raw.get("Address") or "")
        members.append(Member(id=raw["ID"], name=str(raw.get("Node") or raw["ID"]),
                              address=address, api_url=_api_url(address, api_port, scheme),
                              voter=bool(raw.get("Voter", True))))
        if raw.get("Leader") is True:
            leader = raw["ID"]
    return tuple(sorted(members, key=lambda m: m.name)), leader


def _raft_stat(agent_self: Any, key: str) -> int | None:
    """An integer from /v1/agent/self's Stats.raft, when there and well-formed."""
    stats = agent_self.get("Stats") if isinstance(agent_self, dict) else None
    raft = stats.get("raft") if isinstance(stats, dict) else None
    value = raft.get(key) if isinstance(raft, dict) else None
    if value is None:
        return None
    try:
        return as_int(value, f"consul agent/self Stats.raft.{key}")
    except BackendError:  # malformed: autopilot's figure stands in
        return None


def _own_raft_address(agent_self: Any) -> str | None:
    """This server's raft address as it now advertises it (serf address, server port)."""
    member = agent_self.get("Member") if isinstance(agent_self, dict) else None
    if not isinstance(member, dict):
        return None
    address, tags = member.get("Addr"), member.get("Tags")
    port = tags.get("port") if isinstance(tags, dict) else None
    if not isinstance(address, str) or not address or not isinstance(port, str) or not port:
        return None
    return host_port(address, port)


def parse_health(payload: Any) -> dict[str, tuple[int, bool]]:
    """Server id -> (last raft index, healthy) from /v1/operator/autopilot/health."""
    what = "consul autopilot health"
    result = {}
    for raw in need(payload, "Servers", what, list):
        if isinstance(raw, dict) and isinstance(raw.get("ID"), str):
            result[raw["ID"]] = (as_int(raw.get("LastIndex", 0), f"{what} LastIndex"),
                                 bool(raw.get("Healthy")))
    return result


# One server of hashicorp/raft's configuration as its Stats print it:
# "[{Suffrage:Voter ID:<id> Address:<host:port>} ...]".
_RAFT_SERVER = re.compile(r"\{Suffrage:\w+ ID:(\S+) Address:([^\s}]+)\}")


@dataclass(frozen=True, slots=True)
class Moved:
    """This server, back on a new address, as its own raft log still lists it."""

    listed: str  # the raft address the configuration has for it
    own: str  # the one it listens at now
    join: tuple[str, ...]  # the other servers' serf addresses (host:this server's port)

    def why(self) -> str:
        return (f"the cluster has this server at {self.listed}, it now listens at "
                f"{self.own}: joining {', '.join(self.join)} again until Consul takes the "
                "new address")


def moved(agent_self: Any) -> Moved | None:
    """This server back on a new address while the raft configuration it holds (Stats.raft
    .latest_configuration of /v1/agent/self) lists it at its old one; else None (also
    when anything needed is missing). The configuration changes only once the leader
    updates the address: until then the cluster does not reach this server."""
    if not isinstance(agent_self, dict):
        return None
    config, member = agent_self.get("Config"), agent_self.get("Member")
    stats = agent_self.get("Stats")
    raft = stats.get("raft") if isinstance(stats, dict) else None
    text = raft.get("latest_configuration") if isinstance(raft, dict) else None
    own = _own_raft_address(agent_self)
    if not isinstance(config, dict) or not isinstance(member, dict) \
            or not isinstance(text, str) or own is None:
        return None
    servers = dict(_RAFT_SERVER.findall(text))
    self_id = str(config.get("NodeID"))
    listed = servers.get(self_id)
    port = member.get("Port")
    if listed is None or listed == own or not isinstance(port, int) \
            or isinstance(port, bool) or port <= 0:
        return None
    join = []
    for server_id, address in sorted(servers.items()):
        if server_id == self_id:
            continue
        try:
            host, _ = parse_host_port(address, 8300)
        except ValueError:
            continue
        join.append(host_port(host, port))
    return Moved(listed, own, tuple(join)) if join else None


def build_view(agent_self: Any, configuration: Any, health: Any | None, *, api_port: int,
               scheme: str) -> ClusterView:
    """The view of the server that answered /v1/agent/self."""
    config = need(agent_self, "Config", "consul agent/self", dict)
    self_id = str(need(config, "NodeID", "consul agent/self Config", str))
    if config.get("Server") is False:
        raise BackendError("consul agent/self: this agent is a client, not a server")
    members, leader_id = parse_configuration(configuration, api_port=api_port, scheme=scheme)
    applied = commit = None
    notes: tuple[str, ...] = ()
    indexes = None
    if health is not None:
        try:
            indexes = parse_health(health)
        except BackendError:
            notes = ("autopilot health unreadable: catch-up not measured",)
    if indexes is not None:
        if self_id in indexes and leader_id in indexes:
            # Autopilot's LastIndex is the last entry in a server's log, not what its state
            # machine has applied: a restarted server holds its old log but applies nothing
            # until the leader reaches it. Its own raft stats say what it has applied.
            applied = _raft_stat(agent_self, "applied_index")
            if applied is None:
                applied = indexes[self_id][0]
            commit = indexes[leader_id][0]
        # Unreachable per autopilot: any server it counts unhealthy (lagging, not yet
        # stable, silent). The quorum guard then undercounts, which errs on the safe side.
        members = tuple(Member(m.id, m.name, m.address, m.api_url, m.voter,
                               reachable=indexes[m.id][1] if m.id in indexes else None)
                        for m in members)
    elif not notes:
        notes = ("autopilot health unavailable: catch-up not measured",)
    own = _own_raft_address(agent_self)
    listed = next((m.address for m in members if m.id == self_id), None)
    if own is not None and listed and listed != own:
        # Back on a new address (a restarted pod): until Consul updates its configuration
        # the leader sends to the old one, and this server's data stays where it stopped.
        applied = None
        notes += (f"the cluster has this server at {listed}, it now listens at {own}: "
                  "the leader cannot replicate to it until Consul updates the address",)
    build = config.get("Version")
    return ClusterView(members=members, leader_id=leader_id, self_id=self_id,
                       applied_index=applied, commit_index=commit,
                       version=str(build) if build else None, notes=notes)


class ConsulBackend:
    """One Consul server's view; ``api_url`` picks another server to ask."""

    name: ClassVar[str] = "consul"
    can_transfer: ClassVar[bool] = True  # /v1/operator/raft/transfer-leader (Consul 1.15+)

    def __init__(self, client: httpx.AsyncClient, base_url: str, *,
                 peer_api_port: int | None = None,
                 settings: Settings | None = None) -> None:
        self.client = client
        self.base_url = base_url.rstrip("/")
        self._leaving: asyncio.Task[httpx.Response] | None = None  # this server's leave
        self.clock = time.monotonic
        self._moved: Moved | None = None  # per this server's last view
        self._joined_at: float | None = None
        parts = urlsplit(self.base_url)
        self.scheme = parts.scheme or "http"
        # Consul does not publish other servers' HTTP addresses: theirs is guessed from
        # the raft address's host and this port (the same on every pod of a StatefulSet).
        self.api_port = peer_api_port or parts.port or (
            8501 if self.scheme == "https" else 8500)

    async def _get(self, base: str, path: str, *, accept: tuple[int, ...] = ()) -> Any:
        url = f"{base.rstrip('/')}{path}"
        response = await request(self.client, "GET", url, f"consul {url}")
        if response.status_code in accept:  # autopilot health: 429 = unhealthy, same body
            response = httpx.Response(200, content=response.content, request=response.request)
        return decode_json(response, f"consul {url}")

    async def view(self, api_url: str | None = None) -> ClusterView:
        base = api_url or self.base_url
        own = base.rstrip("/") == self.base_url
        agent_self: Any
        configuration: Any
        health: Any
        if own:
            # Back on a new address, the server answers the configuration (stale or not)
            # and its health only after Consul's RPC hold timeout, past the poll's budget:
            # they are asked only once agent/self shows it is not, never to be dropped
            # unanswered every poll.
            agent_self = await self._get(base, "/v1/agent/self")
            self._moved = moved(agent_self)
            if self._moved is not None:
                raise BackendUnavailable(self._moved.why())
            configuration, health = await asyncio.gather(
                self._get(base, "/v1/operator/raft/configuration?stale"),
                self._get(base, "/v1/operator/autopilot/health", accept=(429,)),
                return_exceptions=True)
        else:
            agent_self, configuration, health = await asyncio.gather(
                self._get(base, "/v1/agent/self"),
                self._get(base, "/v1/operator/raft/configuration?stale"),
                self._get(base, "/v1/operator/autopilot/health", accept=(429,)),
                return_exceptions=True)
            if isinstance(agent_self, BaseException):
                raise agent_self
        if isinstance(configuration, BaseException):
            raise configuration
        if isinstance(health, BaseException):
            if not isinstance(health, BackendUnavailable | BackendError):
                raise health
            health = None  # no leader to answer it: the view says so through leader_id
        return build_view(agent_self, configuration, health, api_port=self.api_port,
                          scheme=self.scheme)

    async def mend(self, snapshot: Snapshot, events: Events | None) -> None:
        """While this server is back on a new address the cluster does not list yet (its
        pod restarted), join the other servers' LAN pool again every ``REJOIN_SECONDS``.
        Consul takes a failed node's new address only after DeadNodeReclaimTime (30 s);
        the first join, refused before then, counts as a success, so without another the
        address is taken at the next push-pull (every 30 s). A join changes no membership."""
        found = self._moved
        if found is None:
            return
        now = self.clock()
        if self._joined_at is not None and now - self._joined_at < REJOIN_SECONDS:
            return
        self._joined_at = now
        answers = await asyncio.gather(*(
            request(self.client, "PUT", f"{self.base_url}/v1/agent/join/{target}",
                    f"consul join {target}") for target in found.join),
            return_exceptions=True)
        for target, answer in zip(found.join, answers, strict=True):
            if isinstance(answer, httpx.Response):
                log.info("consul_rejoin", target=target, status=answer.status_code,
                         **({} if answer.status_code == 200 else
                            {"answer": answer.text[:200]}))
            elif isinstance(answer, BackendUnavailable):
                log.info("consul_rejoin_failed", target=target, error=answer.message)
            else:
                raise answer

    async def remove(self, member_id: str, *, leader_url: str) -> None:
        """This server leaves gracefully through its own agent (serf and raft) when it
        answers; any other member, or a silent one, is removed from raft through the
        leader. A member already gone is success."""
        if await self._is_local(member_id):
            out, response = await self._leave(member_id, leader_url)
            if out or (response is not None and response.status_code == 200):
                return  # out of the raft configuration; the rest of the leave is Consul's
            if response is not None and response.status_code in (401, 403):
                self._refused(response, member_id)
            # Otherwise make sure through the leader (a no-op when it is already out).
        url = f"{leader_url.rstrip('/')}/v1/operator/raft/peer"
        response = await request(self.client, "DELETE", url, f"consul {url}",
                                 params={"id": member_id})
        if response.status_code == 200:
            return
        if response.status_code == 500 and "not found" in response.text.lower():
            return  # already out of the configuration
        self._refused(response, member_id)

    async def _leave(self, member_id: str, leader_url: str
                     ) -> tuple[bool, httpx.Response | None]:
        """PUT /v1/agent/leave, until it answers (False, its answer; None for none) or
        the leader's raft configuration no longer has this server (True, None).

        Consul answers only after the whole leave: serf's leave broadcast, the leave
        drain (5 s), then its wait to be removed, about 13 s in all. The leader removes
        the server as soon as it sees the serf leave, and that removal is what a
        scale-down waits for; the request goes on in the background (the store is
        stopped after the preStop hook anyway)."""
        url = f"{self.base_url}/v1/agent/leave"
        leaving = asyncio.create_task(request(self.client, "PUT", url, f"consul {url}",
                                              timeout=LEAVE_TIMEOUT_SECONDS))
        self._leaving = leaving  # referenced until done
        # Its outcome once nobody waits for it is of no interest (the store is stopping).
        leaving.add_done_callback(lambda task: task.cancelled() or task.exception())
        while True:
            done, _ = await asyncio.wait({leaving}, timeout=LEAVE_POLL_SECONDS)
            if done:
                try:
                    return False, leaving.result()
                except BackendUnavailable:
                    return False, None  # it may have closed the connection as it shut down
            if not await self._in_configuration(member_id, leader_url):
                return True, None

    async def _in_configuration(self, member_id: str, leader_url: str) -> bool:
        """Whether the leader's raft configuration still has ``member_id``; True when
        the leader does not answer (a new one may be taking over): keep waiting."""
        try:
            answer = await self._get(leader_url, "/v1/operator/raft/configuration")
            members, _ = parse_configuration(answer, api_port=self.api_port,
                                             scheme=self.scheme)
        except (BackendUnavailable, BackendError):
            return True
        return any(member.id == member_id for member in members)

    async def _is_local(self, member_id: str) -> bool:
        try:
            answer = await self._get(self.base_url, "/v1/agent/self")
        except (BackendUnavailable, BackendError):
            return False
        config = answer.get("Config") if isinstance(answer, dict) else None
        return isinstance(config, dict) and config.get("NodeID") == member_id

    @staticmethod
    def _refused(response: httpx.Response, member_id: str) -> None:
        answered(response, "consul", f"removing {member_id}",
                 needs="the agent's ACL token needs operator:write and agent:write")

    async def transfer_leadership(self, *, leader_url: str, target_id: str) -> None:
        url = f"{leader_url.rstrip('/')}/v1/operator/raft/transfer-leader"
        response = await request(self.client, "POST", url, f"consul {url}",
                                 params={"id": target_id})
        if response.status_code != 200:
            raise BackendUnavailable(f"consul refused the leadership transfer to "
                                     f"{target_id}: HTTP {response.status_code}: "
                                     f"{response.text[:300]}")
