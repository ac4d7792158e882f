"""Consul for the tests and the player: the pinned consul servers on loopback, its KV store."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from player.peers import cached_binary
from player.stores.base import Harness, Image, Kv, LoopbackCluster


def consul_binary(tag: str = "") -> str:
    """The pinned build (the image's tag is not read: one version is played)."""
    return cached_binary("consul", "CONSUL_VERSION")


IMAGES = {"hashicorp/consul": Image(("docker-entrypoint.sh",), {"consul": consul_binary})}


class ConsulKv(Kv):
    """Consul's KV store; a write answers true once the raft log committed it."""

    def put(self, url: str, key: str, value: str) -> bool:
        response = self.http.put(f"{url}/v1/kv/{key}", content=value.encode())
        done = response.status_code == 200 and response.text.strip() == "true"
        if not done:
            self.refused(response)
        return done

    def read_prefix(self, url: str, prefix: str) -> dict[str, str]:
        response = self.http.get(f"{url}/v1/kv/{prefix}", params={"recurse": "",
                                                                   "consistent": ""})
        if response.status_code == 404:
            return {}
        response.raise_for_status()
        return {str(e["Key"]): base64.b64decode(e["Value"] or "").decode()
                for e in response.json()}

    def get(self, url: str, key: str) -> str | None:
        response = self.http.get(f"{url}/v1/kv/{key}", params={"consistent": ""})
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return base64.b64decode(response.json()[0]["Value"] or "").decode()

    def read_local(self, url: str, key: str) -> str | None:
        response = self.http.get(f"{url}/v1/kv/{key}?stale")
        if response.status_code == 404:
            return None
        return base64.b64decode(response.json()[0]["Value"] or b"").decode()


@dataclass
class ConsulCluster(LoopbackCluster):
    """Consul servers named ``consul-<i>`` on ``127.0.40.<i+1>`` (HTTP 8500, raft 8300)."""

    subnet: int = 40
    stabilization: str = "2s"  # autopilot's wait before a new server becomes a voter
    addresses: dict[int, str] = field(default_factory=dict)  # moved servers: ordinal -> ip
    prefix = "consul"
    log_name = "consul.log"

    def ip(self, ordinal: int) -> str:
        return self.addresses.get(ordinal) or super().ip(ordinal)

    def api_url(self, ordinal: int) -> str:
        return f"http://{self.ip(ordinal)}:8500"

    def _command(self, ordinal: int, *, join: list[int], bootstrap_expect: int) -> list[str]:
        node = self.nodes[ordinal]
        ip = self.ip(ordinal)
        command = [
            consul_binary(), "agent", "-server", "-node", node.name,
            "-bind", ip, "-advertise", ip, "-client", ip,
            "-data-dir", str(node.data_dir), "-log-level", "info",
            "-hcl", "ports { dns = -1, grpc = -1, grpc_tls = -1 }",
            # As k8s/consul sets it: a dead server stays a voter until the agent (or an
            # operator) removes it; a killed pod comes back with its data.
            "-hcl", f'autopilot {{ server_stabilization_time = "{self.stabilization}" '
                    f'cleanup_dead_servers = false }}',
            "-hcl", "performance { raft_multiplier = 1 }",
        ]
        for other in join:
            if other != ordinal:
                command += ["-retry-join", self.ip(other)]
        if bootstrap_expect:
            command += ["-bootstrap-expect", str(bootstrap_expect)]
        return command

    def pod_command(self, ordinal: int, *, config_dir: Path, bootstrap_expect: int) -> list[str]:
        return self._command(ordinal, join=list(range(bootstrap_expect)),
                             bootstrap_expect=bootstrap_expect)

    def _start_node(self, ordinal: int, *, join: list[int], bootstrap_expect: int) -> None:
        node = self._node(ordinal)
        node.data_dir.mkdir(parents=True, exist_ok=True)
        self.launch(ordinal, self._command(ordinal, join=join,
                                            bootstrap_expect=bootstrap_expect))

    def start(self, count: int) -> None:
        for ordinal in range(count):
            self._start_node(ordinal, join=list(range(count)), bootstrap_expect=count)
        self.wait_leader()

    def add(self, ordinal: int) -> None:
        join = [o for o, n in sorted(self.nodes.items()) if n.running]
        self._start_node(ordinal, join=join, bootstrap_expect=0)

    def move(self, ordinal: int, ip: str) -> None:
        """Start a stopped server again, with its data, on another address."""
        self.addresses[ordinal] = ip
        join = [o for o, n in sorted(self.nodes.items()) if n.running]
        self.launch(ordinal, self._command(ordinal, join=join, bootstrap_expect=0))

    def leader(self) -> int | None:
        by_ip = {self.ip(o): o for o in self.nodes}
        for ordinal, node in sorted(self.nodes.items()):
            if not node.running:
                continue
            try:
                answer = self.http.get(self.api_url(ordinal) + "/v1/status/leader").json()
            except (httpx.HTTPError, ValueError):
                continue
            if isinstance(answer, str) and answer:
                return by_ip.get(answer.rsplit(":", 1)[0])
        return None

    def configuration(self) -> list[dict[str, Any]]:
        """The raft configuration's servers, as the leader has them."""
        url = self.api_url(self.wait_leader()) + "/v1/operator/raft/configuration"
        servers = self.http.get(url).json()["Servers"]
        assert isinstance(servers, list)
        return servers

    def leave(self, ordinal: int) -> None:
        """`consul leave` on that server: it leaves serf and raft, then exits."""
        self.http.put(self.api_url(ordinal) + "/v1/agent/leave", timeout=30).raise_for_status()


class ConsulHarness(Harness[ConsulCluster]):
    store = "consul"
    kv_class = ConsulKv

    def make_cluster(self, workdir: Path) -> ConsulCluster:
        return ConsulCluster(workdir)

    def remove_through_store(self, ordinal: int) -> None:
        name = self.cluster.node_id(ordinal)
        if any(server.get("Node") == name for server in self.cluster.configuration()):
            self.cluster.leave(ordinal)  # else already out

    def write_one_bulk(self, client: httpx.Client, url: str, index: int, value: str) -> None:
        client.put(f"{url}/v1/kv/bulk/{index}", content=value.encode()).raise_for_status()


HARNESS = ConsulHarness
