"""Real etcd and rqlite clusters on loopback addresses, one address per simulated pod."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from player.wait import wait_until

CACHE = Path(os.environ.get("STS_AGENT_CACHE")
             or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sts-agent")
PEERS_ENV = Path(__file__).resolve().parents[1] / "scripts" / "peers.env"


class MissingBinary(RuntimeError):
    """A store binary is not installed or not built."""


def pinned(name: str) -> str:
    """A version pinned in scripts/peers.env."""
    for line in PEERS_ENV.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == name:
            return value.strip()
    raise KeyError(name)


def etcd_binary() -> str:
    found = shutil.which("etcd")
    if not found:
        raise MissingBinary("etcd not found (Debian package etcd-server)")
    return found


def rqlited_binary() -> str:
    path = CACHE / "bin" / f"rqlited-{pinned('RQLITE_VERSION')}"
    if not path.exists():
        raise MissingBinary(f"{path} not built (scripts/build_peers.sh)")
    return str(path)


class Proc:
    """One store process, its own process group, output to a log file."""

    def __init__(self, command: list[str], log_path: Path, env: dict[str, str] | None = None):
        self.command = command
        self.log_path = log_path
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT,
                                            env=self.env, start_new_session=True)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, signum: int) -> None:
        if self.running:
            assert self.process is not None
            os.killpg(self.process.pid, signum)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit code."""
        if self.process is None:
            return None
        if self.running:
            self.signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.process.wait()
        return self.process.returncode

    def kill(self) -> None:
        if self.running:
            self.signal(signal.SIGKILL)
            assert self.process is not None
            self.process.wait()

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class StoreNode:
    """One simulated pod's store."""

    name: str
    ip: str
    data_dir: Path
    proc: Proc | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.running


@dataclass
class LoopbackCluster:
    """Store nodes named ``<prefix>-<i>`` on ``127.0.<subnet>.<i+1>``, each its own "pod"."""

    workdir: Path
    subnet: int = 0
    nodes: dict[int, StoreNode] = field(default_factory=dict)
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=5.0))
    prefix = ""

    def ip(self, ordinal: int) -> str:
        return f"127.0.{self.subnet}.{ordinal + 1}"

    def _node(self, ordinal: int) -> StoreNode:
        if ordinal not in self.nodes:
            name = f"{self.prefix}-{ordinal}"
            self.nodes[ordinal] = StoreNode(name, self.ip(ordinal),
                                            self.workdir / name / "data")
        return self.nodes[ordinal]

    def restart(self, ordinal: int) -> None:
        """Start a stopped node again with its data dir."""
        node = self.nodes[ordinal]
        assert node.proc is not None and not node.running
        node.proc.start()

    def stop_all(self) -> None:
        for node in self.nodes.values():
            if node.proc is not None:
                node.proc.stop()
        self.http.close()


@dataclass
class EtcdCluster(LoopbackCluster):
    """etcd members named ``etcd-<i>`` on ``127.0.<subnet>.<i+1>``."""

    subnet: int = 20
    election_ms: int = 1000
    heartbeat_ms: int = 100
    token: str = "sts-agent-test"
    prefix = "etcd"

    def client_url(self, ordinal: int) -> str:
        return f"http://{self.ip(ordinal)}:2379"

    def peer_url(self, ordinal: int) -> str:
        return f"http://{self.ip(ordinal)}:2380"

    def _command(self, ordinal: int, initial: dict[int, str], state: str) -> list[str]:
        node = self.nodes[ordinal]
        cluster = ",".join(f"etcd-{o}={url}" for o, url in sorted(initial.items()))
        return [
            etcd_binary(), "--name", node.name, "--data-dir", str(node.data_dir),
            "--listen-client-urls", self.client_url(ordinal),
            "--advertise-client-urls", self.client_url(ordinal),
            "--listen-peer-urls", self.peer_url(ordinal),
            "--initial-advertise-peer-urls", self.peer_url(ordinal),
            "--initial-cluster", cluster, "--initial-cluster-state", state,
            "--initial-cluster-token", self.token,
            "--election-timeout", str(self.election_ms),
            "--heartbeat-interval", str(self.heartbeat_ms),
            "--logger", "zap", "--log-outputs", "stderr",
        ]

    def start(self, count: int) -> None:
        """Bootstrap a new cluster of ``count`` members and wait for a leader."""
        initial = {o: self.peer_url(o) for o in range(count)}
        for ordinal in range(count):
            node = self._node(ordinal)
            node.proc = Proc(self._command(ordinal, initial, "new"),
                             self.workdir / node.name / "etcd.log")
            node.proc.start()
        self.wait_leader()

    def add(self, ordinal: int, *, learner: bool = False, timeout: float = 30.0) -> str:
        """``member add`` a new voter (or learner) through the API, then start it; returns
        its id. etcd refuses adds while members are younger than 5 s: retried."""
        node = self._node(ordinal)
        body: dict[str, Any] = {"peerURLs": [self.peer_url(ordinal)], "isLearner": learner}
        answer = wait_until(lambda: self.api(None, "/v3/cluster/member/add", body),
                            what=f"etcd to accept adding etcd-{ordinal}", timeout=timeout,
                            interval=0.25)
        initial = {}
        for member in answer["members"]:
            name = member.get("name") or node.name
            initial[int(name.rsplit("-", 1)[1])] = member["peerURLs"][0]
        node.proc = Proc(self._command(ordinal, initial, "existing"),
                         self.workdir / node.name / "etcd.log")
        node.proc.start()
        return str(answer["member"]["ID"])

    def api(self, ordinal: int | None, path: str, body: dict[str, Any]) -> Any:
        """POST to one member's v3 gateway (any running member when ``ordinal`` is None)."""
        ordinals = [ordinal] if ordinal is not None else [
            o for o, n in sorted(self.nodes.items()) if n.running
        ]
        last: Exception | None = None
        for candidate in ordinals:
            try:
                response = self.http.post(self.client_url(candidate) + path, json=body)
                response.raise_for_status()
                return response.json()
            except httpx.HTTPError as exc:
                last = exc
        raise RuntimeError(f"no etcd member answered {path}: {last}")

    def member_ids(self) -> dict[str, str]:
        """name -> member id, as the cluster reports it."""
        return {m.get("name", ""): str(m["ID"])
                for m in self.api(None, "/v3/cluster/member/list", {})["members"]}

    def leader(self) -> int | None:
        """Ordinal of the current leader, or None."""
        ids = {v: k for k, v in self.member_ids().items()}
        for ordinal, node in sorted(self.nodes.items()):
            if not node.running:
                continue
            try:
                status = self.api(ordinal, "/v3/maintenance/status", {})
            except RuntimeError:
                continue
            leader = str(status.get("leader", "0"))
            if leader != "0" and leader in ids:
                return int(ids[leader].rsplit("-", 1)[1])
        return None

    def wait_leader(self, timeout: float = 30.0) -> int:
        return wait_until(lambda: self.leader(), what="an etcd leader", timeout=timeout)

    def remove(self, member_id: str, timeout: float = 30.0) -> None:
        """Remove a member; etcd refuses ("unhealthy cluster") until every remaining
        member has been up for a few seconds, so retry until ``timeout``."""
        wait_until(lambda: self.api(None, "/v3/cluster/member/remove", {"ID": member_id}),
                   what=f"etcd to accept removing member {member_id}", timeout=timeout,
                   interval=0.25)



@dataclass
class RqliteCluster(LoopbackCluster):
    """rqlite nodes with ids ``rqlite-<i>`` on ``127.0.<subnet>.<i+1>`` (HTTP 4001, raft 4002)."""

    subnet: int = 30
    election_timeout: str = "1s"
    extra_args: dict[int, list[str]] = field(default_factory=dict)
    prefix = "rqlite"

    def api_url(self, ordinal: int) -> str:
        return f"http://{self.ip(ordinal)}:4001"

    def node_id(self, ordinal: int) -> str:
        return f"{self.prefix}-{ordinal}"

    def _command(self, ordinal: int, *, join: list[int], bootstrap_expect: int) -> list[str]:
        node = self.nodes[ordinal]
        command = [
            rqlited_binary(), "-node-id", node.name,
            "-http-addr", f"{node.ip}:4001", "-raft-addr", f"{node.ip}:4002",
            "-raft-election-timeout", self.election_timeout,
            "-join", ",".join(f"{self.ip(o)}:4002" for o in join),
            "-join-interval", "500ms", "-join-attempts", "60",
        ]
        if bootstrap_expect:
            command += ["-bootstrap-expect", str(bootstrap_expect)]
        return [*command, *self.extra_args.get(ordinal, []), str(node.data_dir)]

    def start(self, count: int) -> None:
        for ordinal in range(count):
            node = self._node(ordinal)
            node.proc = Proc(self._command(ordinal, join=list(range(count)),
                                           bootstrap_expect=count),
                             self.workdir / node.name / "rqlited.log")
            node.proc.start()
        self.wait_leader()

    def add(self, ordinal: int) -> None:
        """Start a new node that joins the running cluster."""
        node = self._node(ordinal)
        join = [o for o, n in sorted(self.nodes.items()) if n.running]
        node.proc = Proc(self._command(ordinal, join=join, bootstrap_expect=0),
                         self.workdir / node.name / "rqlited.log")
        node.proc.start()

    def status(self, ordinal: int) -> Any:
        response = self.http.get(self.api_url(ordinal) + "/status")
        response.raise_for_status()
        return response.json()

    def leader(self) -> int | None:
        for ordinal, node in sorted(self.nodes.items()):
            if not node.running:
                continue
            try:
                leader = self.status(ordinal)["store"]["leader"].get("node_id")
            except (httpx.HTTPError, KeyError, ValueError):
                continue
            if leader:
                return int(leader.rsplit("-", 1)[1])
        return None

    def wait_leader(self, timeout: float = 60.0) -> int:
        return wait_until(lambda: self.leader(), what="an rqlite leader", timeout=timeout)

    def _leader_url(self) -> str:
        return self.api_url(self.wait_leader())

    def remove(self, node_id: str) -> None:
        response = self.http.request("DELETE", self._leader_url() + "/remove",
                                     json={"id": node_id})
        response.raise_for_status()

    def execute(self, statements: list[Any]) -> Any:
        response = self.http.post(self._leader_url() + "/db/execute", json=statements)
        response.raise_for_status()
        return response.json()


def consul_binary() -> str:
    path = CACHE / "bin" / f"consul-{pinned('CONSUL_VERSION')}"
    if not path.exists():
        raise MissingBinary(f"{path} not built (scripts/build_peers.sh)")
    return str(path)


@dataclass
class ConsulCluster(LoopbackCluster):
    """Consul servers named ``consul-<i>`` on ``127.0.<subnet>.<i+1>`` (HTTP 8500, raft 8300)."""

    subnet: int = 40
    stabilization: str = "2s"  # autopilot's wait before a new server becomes a voter
    addresses: dict[int, str] = field(default_factory=dict)  # moved servers: ordinal -> ip
    prefix = "consul"

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

    def start(self, count: int) -> None:
        for ordinal in range(count):
            node = self._node(ordinal)
            node.data_dir.mkdir(parents=True, exist_ok=True)
            node.proc = Proc(self._command(ordinal, join=list(range(count)),
                                           bootstrap_expect=count),
                             self.workdir / node.name / "consul.log")
            node.proc.start()
        self.wait_leader()

    def add(self, ordinal: int) -> None:
        """Start a new server that joins the running ones."""
        node = self._node(ordinal)
        node.data_dir.mkdir(parents=True, exist_ok=True)
        join = [o for o, n in sorted(self.nodes.items()) if n.running]
        node.proc = Proc(self._command(ordinal, join=join, bootstrap_expect=0),
                         self.workdir / node.name / "consul.log")
        node.proc.start()

    def move(self, ordinal: int, ip: str) -> None:
        """Start a stopped server again, with its data, on another address."""
        self.addresses[ordinal] = ip
        node = self.nodes[ordinal]
        join = [o for o, n in sorted(self.nodes.items()) if n.running]
        node.proc = Proc(self._command(ordinal, join=join, bootstrap_expect=0),
                         self.workdir / node.name / "consul.log")
        node.proc.start()

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

    def wait_leader(self, timeout: float = 60.0) -> int:
        return wait_until(lambda: self.leader(), what="a consul leader", timeout=timeout)

    def configuration(self) -> list[dict[str, Any]]:
        """The raft configuration's servers, as the leader has them."""
        url = self.api_url(self.wait_leader()) + "/v1/operator/raft/configuration"
        servers = self.http.get(url).json()["Servers"]
        assert isinstance(servers, list)
        return servers

    def leave(self, ordinal: int) -> None:
        """`consul leave` on that server: it leaves serf and raft, then exits."""
        self.http.put(self.api_url(ordinal) + "/v1/agent/leave", timeout=30).raise_for_status()
