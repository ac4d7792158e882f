"""A real answer of MariaDB 10.11 + galera-4 26.4 (SHOW GLOBAL STATUS LIKE 'wsrep_%', one
Synced node of a 3-node cluster, and its wsrep_sst_method; addresses as the tests use
them), for the parser property tests."""

from __future__ import annotations

from typing import Any

from agent.model import ClusterView
from agent.stores.galera.status import build_view, parse_status

STATUS: dict[str, Any] = {
    "wsrep_local_state_uuid": "e955b900-ee63-11f1-bd7e-467014377b0a",
    "wsrep_last_committed": "8",
    "wsrep_local_send_queue": "0",
    "wsrep_local_recv_queue": "0",
    "wsrep_flow_control_paused": "0",
    "wsrep_local_state": "4",
    "wsrep_local_state_comment": "Synced",
    "wsrep_incoming_addresses": "10.0.0.1:3306,10.0.0.2:3306,10.0.0.3:3306",
    "wsrep_gcomm_uuid": "eb21fa3d-ee63-11f1-af78-87be3e0be0ec",
    "wsrep_cluster_conf_id": "1",
    "wsrep_cluster_size": "3",
    "wsrep_cluster_state_uuid": "e955b900-ee63-11f1-bd7e-467014377b0a",
    "wsrep_cluster_status": "Primary",
    "wsrep_connected": "ON",
    "wsrep_provider_name": "Galera",
    "wsrep_provider_version": "4.23(rXXXX)",
    "wsrep_ready": "ON",
    "wsrep_sst_method": "rsync",  # SHOW GLOBAL VARIABLES: how it copies as a donor
}
ANSWERS: tuple[Any, ...] = (STATUS,)


def parse(status: Any) -> ClusterView:
    return build_view(parse_status(status), self_address="10.0.0.2:3306")
