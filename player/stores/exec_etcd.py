"""etcd driven only through etcdctl hooks (exec_etcd_hooks/), for the exec store's tests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import httpx

from player.peers import installed_binary
from player.stores.base import HooksHarness, HookStartedCluster, exec_pod_env
from player.stores.etcd import EtcdKv, etcd_binary

HOOKS = Path(__file__).with_name("exec_etcd_hooks")


def etcd_hooks_json() -> str:
    """AGENT_EXEC_HOOKS for etcd: RSS's five hooks, and the members hook."""
    scripts = {"sequence": "sequence.sh", "seed": "seed.sh", "primary": "start.sh",
               "status": "check.sh", "stop": "stop.sh", "members": "members.py"}
    return json.dumps({name: {"command": [str(HOOKS / script)], "timeout": "30s"}
                       for name, script in scripts.items()})


@dataclass
class ExecEtcdCluster(HookStartedCluster):
    """etcd members ``exec-<i>`` on ``127.0.63.<i+1>``, started by the agent's hooks."""

    subnet: int = 63
    prefix = "exec"
    pid_file = "etcd.pid"

    def api_url(self, ordinal: int) -> str:
        return f"http://{self.ip(ordinal)}:2379"

    def leader(self) -> int | None:
        """The ordinal whose etcd says it leads."""
        for ordinal in sorted(self.nodes):
            if self.pid(ordinal) is None:
                continue
            try:
                status = self.http.post(f"{self.api_url(ordinal)}/v3/maintenance/status",
                                        json={}).json()
            except (httpx.HTTPError, ValueError):
                continue
            member = status.get("header", {}).get("member_id")
            if member is not None and member == status.get("leader"):
                return ordinal
        return None


class ExecEtcdHarness(HooksHarness[ExecEtcdCluster]):
    """Pods whose sidecar runs etcd by its hooks: no store process of the pod's own."""

    store = "exec"
    kv_class = EtcdKv

    def make_cluster(self, workdir: Path) -> ExecEtcdCluster:
        return ExecEtcdCluster(workdir)

    def pod_env(self, ordinal: int, *, config_dir: Path, dns_server: str) -> dict[str, str]:
        node = self.cluster.node_dir(ordinal)
        election_ms = int(self.election_seconds * 1000)
        return {**exec_pod_env(self.ip(ordinal), config_dir=config_dir, dns_server=dns_server),
                "AGENT_EXEC_HOOKS": etcd_hooks_json(), "HOOK_DATA_DIR": str(node / "data"),
                "HOOK_RUN_DIR": str(node / "run"), "HOOK_ETCD": etcd_binary("3.4"),
                "HOOK_ETCDCTL": installed_binary("etcdctl", "etcd-client"),
                "HOOK_ETCD_FLAGS": f"--election-timeout {election_ms} "
                                   f"--heartbeat-interval {max(50, election_ms // 10)}"}

