"""etcd driven only through etcdctl hooks (exec_etcd_hooks/), for the exec store's tests."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import httpx

from player.peers import installed_binary
from player.stores.base import Harness, LoopbackCluster
from player.stores.etcd import EtcdKv, etcd_binary

HOOKS = Path(__file__).with_name("exec_etcd_hooks")


def etcd_hooks_json() -> str:
    """AGENT_EXEC_HOOKS for etcd: RSS's five hooks, and the members hook."""
    scripts = {"sequence": "sequence.sh", "seed": "seed.sh", "primary": "start.sh",
               "status": "check.sh", "stop": "stop.sh", "members": "members.py"}
    return json.dumps({name: {"command": [str(HOOKS / script)], "timeout": "30s"}
                       for name, script in scripts.items()})


@dataclass
class ExecEtcdCluster(LoopbackCluster):
    """etcd members ``exec-<i>`` on ``127.0.63.<i+1>``, started by the agent's hooks."""

    subnet: int = 63
    prefix = "exec"

    def node_dir(self, ordinal: int) -> Path:
        return self.workdir / f"{self.prefix}-{ordinal}"

    def api_url(self, ordinal: int) -> str:
        return f"http://{self.ip(ordinal)}:2379"

    def pid(self, ordinal: int) -> int | None:
        """etcd's pid from the hooks' pid file, while that process lives."""
        try:
            pid = int((self.node_dir(ordinal) / "run" / "etcd.pid").read_text().strip())
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[0]
        except (OSError, ValueError, IndexError):
            return None
        return None if state == "Z" else pid

    def signal_store(self, ordinal: int, signum: int) -> None:
        pid = self.pid(ordinal)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

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

    def stop_all(self) -> None:
        for ordinal in list(self.nodes):
            self.signal_store(ordinal, signal.SIGKILL)
        super().stop_all()


class ExecEtcdHarness(Harness[ExecEtcdCluster]):
    """Pods whose sidecar runs etcd by its hooks: no store process of the pod's own."""

    store = "exec"
    kv_class = EtcdKv
    store_in_sidecar = True

    def make_cluster(self, workdir: Path) -> ExecEtcdCluster:
        return ExecEtcdCluster(workdir)

    def store_url(self, ordinal: int) -> str:
        return f"http://{self.ip(ordinal)}:9090"

    def pod_env(self, ordinal: int, *, config_dir: Path, dns_server: str) -> dict[str, str]:
        node = self.cluster.node_dir(ordinal)
        election_ms = int(self.election_seconds * 1000)
        return {"AGENT_EXEC_HOOKS": etcd_hooks_json(), "AGENT_OUTPUT_DIR": str(config_dir),
                "AGENT_SERVICE": self.store, "AGENT_DNS_SERVER": dns_server,
                "AGENT_CLUSTER_DOMAIN": "cluster.local", "AGENT_ADVERTISE": "ip",
                "POD_IP": self.ip(ordinal), "HOOK_DATA_DIR": str(node / "data"),
                "HOOK_RUN_DIR": str(node / "run"), "HOOK_ETCD": etcd_binary("3.4"),
                "HOOK_ETCDCTL": installed_binary("etcdctl", "etcd-client"),
                "HOOK_ETCD_FLAGS": f"--election-timeout {election_ms} "
                              f"--heartbeat-interval {max(50, election_ms // 10)}",
                "AGENT_POLL_INTERVAL_SECONDS": "1", "AGENT_STALE_AFTER_SECONDS": "5",
                "AGENT_STORE_TIMEOUT_SECONDS": "2"}

    def running(self) -> list[int]:
        return [o for o in sorted(self.cluster.nodes) if self.cluster.pid(o) is not None]

    def stop_store(self, ordinal: int) -> None:
        self.cluster.signal_store(ordinal, signal.SIGTERM)

    def kill_store(self, ordinal: int) -> None:
        self.cluster.signal_store(ordinal, signal.SIGKILL)

    def remove_through_store(self, ordinal: int) -> None:
        raise NotImplementedError("the exec store removes a member by its stop hook")

    def write_one_bulk(self, client: httpx.Client, url: str, index: int, value: str) -> None:
        self.kv.put(url, f"bulk/{index}", value)
