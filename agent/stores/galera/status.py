"""wsrep status for the verdict and /status: parsed, checked, a ClusterView (no I/O)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from agent.errors import BackendError
from agent.model import ClusterView, Member, Snapshot

SYNCED = 4
DONOR = 2
STATE_NAMES = {1: "Joining", 2: "Donor/Desynced", 3: "Joined", 4: "Synced"}
# SST methods that leave the donor serving writes (rsync and mysqldump hold a global
# read lock, so such a donor is out of service while it copies).
NON_BLOCKING_SST = frozenset({"mariabackup"})


@dataclass(frozen=True, slots=True)
class GaleraStatus:
    """The wsrep_% status variables the agent reads."""

    cluster_status: str  # Primary, non-Primary, Disconnected
    local_state: int
    local_state_comment: str
    ready: bool
    connected: bool
    cluster_size: int
    last_committed: int
    recv_queue: int
    incoming: tuple[str, ...]  # every member's client address, as each advertises it
    state_uuid: str  # the cluster's history (wsrep_cluster_state_uuid)
    gcomm_uuid: str  # this node's id in the group
    provider_version: str
    uptime: int = 0  # seconds since this mariadbd started (Uptime)
    sst_method: str = ""  # how it gives and takes full copies (wsrep_sst_method)


def _text(status: Mapping[str, str], key: str) -> str:
    value = status.get(key, "")
    if not isinstance(value, str):
        raise BackendError(f"galera status: {key} is a {type(value).__name__}, not text")
    return value


def _int(status: Mapping[str, str], key: str, default: int | None = None) -> int:
    value = _text(status, key)
    if value is None or value == "":
        if default is not None:
            return default
        raise BackendError(f"galera status: no {key}")
    try:
        return int(value)
    except ValueError:
        raise BackendError(f"galera status: {key} {value!r} is not an integer") from None


def parse_status(status: Mapping[str, str]) -> GaleraStatus:
    """The agent's fields from ``SHOW GLOBAL STATUS LIKE 'wsrep_%'`` (name -> value);
    BackendError when wsrep is off or a field is garbage."""
    if not isinstance(status, Mapping):
        raise BackendError(f"galera status: expected name -> value, got {type(status).__name__}")
    if "wsrep_cluster_status" not in status:
        raise BackendError("galera status: no wsrep_cluster_status (wsrep is off or the "
                           "server is not a Galera node)")
    incoming = tuple(a.strip() for a in _text(status, "wsrep_incoming_addresses").split(",")
                     if a.strip() and a.strip() != "AUTO")
    return GaleraStatus(
        cluster_status=_text(status, "wsrep_cluster_status"),
        local_state=_int(status, "wsrep_local_state"),
        local_state_comment=_text(status, "wsrep_local_state_comment"),
        ready=_text(status, "wsrep_ready").upper() == "ON",
        connected=_text(status, "wsrep_connected").upper() == "ON",
        cluster_size=_int(status, "wsrep_cluster_size", 0),
        last_committed=_int(status, "wsrep_last_committed", -1),
        recv_queue=_int(status, "wsrep_local_recv_queue", 0),
        incoming=incoming,
        state_uuid=_text(status, "wsrep_cluster_state_uuid"),
        gcomm_uuid=_text(status, "wsrep_gcomm_uuid"),
        provider_version=_text(status, "wsrep_provider_version"),
        uptime=_int(status, "Uptime", 0),
        sst_method=_text(status, "wsrep_sst_method"),
    )


def problems(status: GaleraStatus) -> tuple[tuple[str, str | None], ...]:
    """Galera's own readiness checks: (name, why it fails, None when it passes). A donor
    counts as synced only when the method it copies with is known not to block writes."""
    state = STATE_NAMES.get(status.local_state, f"state {status.local_state}")
    if status.local_state == SYNCED:
        synced = None
    elif status.local_state == DONOR and status.sst_method in NON_BLOCKING_SST:
        synced = None
    elif status.local_state == DONOR:
        method = status.sst_method or "a method the server did not name"
        synced = (f"donor: serving a full copy with {method}, which blocks writes "
                  "on this node while it runs")
    else:
        synced = f"not synced: {status.local_state_comment or state}"
    return (
        ("galera_connected", None if status.connected else
         "not connected to the group (wsrep_connected OFF)"),
        ("galera_primary", None if status.cluster_status == "Primary" else
         f"not in the Primary component: {status.cluster_status} (quorum lost or "
         "partitioned: this node refuses queries)"),
        ("galera_synced", synced),
        ("galera_ready", None if status.ready else
         "wsrep_ready OFF: the node does not accept queries"),
    )


def build_view(status: GaleraStatus, *, self_address: str | None) -> ClusterView:
    """The node's view: the members of its component by client address; a node in the
    Primary component is its own authority (Galera has no leader: every member of the
    Primary component holds the same membership). Lag is the receive queue: write sets
    this node has received and not yet applied."""
    members = tuple(Member(id=a, name=a, address=a, reachable=True) for a in status.incoming)
    primary = status.cluster_status == "Primary"
    self_id = self_address if self_address else None
    return ClusterView(
        members=members,
        leader_id=self_id if primary else None,
        self_id=self_id,
        applied_index=status.last_committed,
        commit_index=status.last_committed + status.recv_queue,
        version=status.provider_version or None,
        checks=problems(status),
        details=(("cluster_size", status.cluster_size),
                 ("cluster_status", status.cluster_status),
                 ("local_state", status.local_state),
                 ("local_state_comment", status.local_state_comment),
                 ("last_committed", status.last_committed),
                 ("recv_queue", status.recv_queue),
                 ("state_uuid", status.state_uuid),
                 ("sst_method", status.sst_method)),
    )


def peer_primary(snapshot: Snapshot) -> bool:
    """Whether a peer (not this node) answered the latest poll as a member of a Primary
    component."""
    authority = snapshot.authority
    return (authority is not None and snapshot.authority_source not in (None, "local")
            and authority.detail("cluster_status") == "Primary")
