"""What every store's test harness shares: loopback nodes, a key-value client, the harness.

A store's module under ``player/stores/`` (named as the agent's registry names it) defines
its ``Cluster`` of real store processes on loopback, its ``Kv`` client, its ``Harness``
(the cluster plus one `sts-agent run` sidecar a node) and the ``IMAGES`` the kubelet maps
to local programs.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import httpx

from player.proc import Proc
from player.sidecar import Sidecar
from player.wait import wait_until

if TYPE_CHECKING:
    from player.statefulset import StatefulSetPlayer


def loopback(subnet: int, host: int) -> str:
    """``127.0.<subnet>.<host>`` in this process's block: parallel test workers get
    blocks 100 subnets apart (STS_AGENT_LOOPBACK_BLOCK, 0 to 2), so their stores' fixed
    addresses never meet."""
    block = int(os.environ.get("STS_AGENT_LOOPBACK_BLOCK", "0"))
    if not 0 <= block <= 2:
        raise ValueError(f"STS_AGENT_LOOPBACK_BLOCK must be 0, 1 or 2, not {block}")
    return f"127.0.{subnet + 100 * block}.{host}"


@dataclass(frozen=True)
class Image:
    """A container image as the player plays it: its ENTRYPOINT, and the local program
    behind each executable a command may name (given the image's tag, "" for none)."""

    entrypoint: tuple[str, ...]
    binaries: dict[str, Callable[[str], str]]


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
    prefix: ClassVar[str] = ""
    log_name: ClassVar[str] = "store.log"

    def ip(self, ordinal: int) -> str:
        return loopback(self.subnet, ordinal + 1)

    def api_url(self, ordinal: int) -> str:
        """Node ``ordinal``'s client API."""
        raise NotImplementedError

    def node_id(self, ordinal: int) -> str:
        return f"{self.prefix}-{ordinal}"

    def _node(self, ordinal: int) -> StoreNode:
        if ordinal not in self.nodes:
            name = f"{self.prefix}-{ordinal}"
            self.nodes[ordinal] = StoreNode(name, self.ip(ordinal),
                                            self.workdir / name / "data")
        return self.nodes[ordinal]

    def launch(self, ordinal: int, command: list[str]) -> None:
        node = self.nodes[ordinal]
        node.proc = Proc(command, self.workdir / node.name / self.log_name)
        node.proc.start()

    def start(self, count: int) -> None:
        """Bootstrap a new cluster of ``count`` nodes and wait for a leader."""
        raise NotImplementedError

    def add(self, ordinal: int) -> Any:
        """Start a new node that joins the running cluster."""
        raise NotImplementedError

    def pod_command(self, ordinal: int, *, config_dir: Path, bootstrap_expect: int) -> list[str]:
        """The store's command in a pod whose `sts-agent init` ran (config in
        ``config_dir`` where the store reads one, else the manifest's fixed flags)."""
        raise NotImplementedError

    def leader(self) -> int | None:
        """Ordinal of the current leader, or None."""
        raise NotImplementedError

    def wait_leader(self, timeout: float = 60.0) -> int:
        return wait_until(lambda: self.leader(), what=f"a {self.prefix} leader", timeout=timeout)

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
class HookStartedCluster(LoopbackCluster):
    """Nodes whose store an exec agent's hooks start (no process of the harness's own):
    found by the pid file the hooks leave in the node's run dir."""

    pid_file: ClassVar[str] = "store.pid"

    def node_dir(self, ordinal: int) -> Path:
        return self.workdir / f"{self.prefix}-{ordinal}"

    def pid(self, ordinal: int) -> int | None:
        """The store's pid, while that process lives (a zombie has ended)."""
        try:
            pid = int((self.node_dir(ordinal) / "run" / self.pid_file).read_text().strip())
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[0]
        except (OSError, ValueError, IndexError):
            return None
        return None if state == "Z" else pid

    def signal_store(self, ordinal: int, signum: int) -> None:
        pid = self.pid(ordinal)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def stop_all(self) -> None:
        for ordinal in list(self.nodes):
            self.signal_store(ordinal, signal.SIGKILL)
        super().stop_all()


class Kv:
    """One store's key-value client over its API: the writer's and the harness's."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http
        # What the store answered to the last put it refused (its status and message),
        # for a writer that says why: one client per thread, so no lock.
        self.refusal = ""

    @staticmethod
    def credentials(secrets: dict[str, dict[str, bytes]]) -> tuple[str, str] | None:
        """Basic-auth credentials a client needs, from a k8s example's Secrets (name ->
        key -> bytes); None when the store lets clients in without."""
        return None

    @staticmethod
    def client_url(ip: str, store: str) -> str:
        """The URL this client writes through on the pod at ``ip`` (the store's client
        port, as the registry names it)."""
        from agent.registry import STORES

        spec = STORES[store]
        return f"{spec.scheme}://{ip}:{spec.client_port}"

    @staticmethod
    def setup(player: StatefulSetPlayer) -> None:
        """What a k8s example's cluster needs before this client can write (a user, a
        table), done as its administrator; nothing for most stores."""

    def put(self, url: str, key: str, value: str) -> bool:
        """Write through the node at ``url``; True once the store acknowledged it."""
        raise NotImplementedError

    def refused(self, response: httpx.Response, why: str = "") -> None:
        """Keep what the store answered to a refused put: its status and ``why``, else
        the start of its body."""
        self.refusal = f"{response.status_code} {why or response.text.strip()[:120]}"

    def read_prefix(self, url: str, prefix: str) -> dict[str, str]:
        """Every key under ``prefix``, read linearizably through the node at ``url``."""
        raise NotImplementedError

    def get(self, url: str, key: str) -> str | None:
        """``key`` read linearizably through the node at ``url``; None when it is absent.
        Raises (an httpx.HTTPError or ValueError) when the store gives no answer (no
        leader, a timeout): a failed read never passes for an absent key."""
        raise NotImplementedError

    def read_local(self, url: str, key: str) -> str | None:
        """``key`` from the node at ``url``'s own copy, without asking its leader."""
        raise NotImplementedError


C = TypeVar("C", bound=LoopbackCluster)


class Harness(Generic[C]):
    """A store cluster with one `sts-agent run` sidecar per node (same loopback address)."""

    store: ClassVar[str]
    kv_class: ClassVar[type[Kv]]
    # The k8s example's templates `sts-agent init` renders for this store, if any.
    templates: ClassVar[Path | None] = None
    # True: the sidecar starts the store (an exec store's hooks), not the pod's own
    # store container.
    store_in_sidecar: ClassVar[bool] = False

    def __init__(self, workdir: Path, *, election_seconds: float = 1.0,
                 sidecar_env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.sidecars: dict[int, Sidecar] = {}
        self.sidecar_env = dict(sidecar_env or {})
        self.election_seconds = election_seconds
        self.cluster: C = self.make_cluster(workdir / "stores")
        self.http = httpx.Client(timeout=5, follow_redirects=True)
        self.kv = self.kv_class(self.http)

    # store-specific -------------------------------------------------------------------
    def make_cluster(self, workdir: Path) -> C:
        raise NotImplementedError

    def remove_through_store(self, ordinal: int) -> None:
        """Take node ``ordinal`` out of the cluster with the store's own tools. Idempotent:
        a node already out is success (a retried removal may find it gone)."""
        raise NotImplementedError

    def write_one_bulk(self, client: httpx.Client, url: str, index: int, value: str) -> None:
        """One write of ``write_entries`` (bulk data, not read back)."""
        raise NotImplementedError

    def init_env(self, ordinal: int) -> dict[str, str]:
        """What `sts-agent init` needs besides the shared settings (credentials)."""
        return {}

    def pod_env(self, ordinal: int, *, config_dir: Path, dns_server: str) -> dict[str, str]:
        """What a pod's sidecar needs besides the shared settings, where its init ran
        (``config_dir``: init's output; ``dns_server``: the cluster's DNS)."""
        return {}

    # shared -----------------------------------------------------------------------------
    def store_url(self, ordinal: int) -> str:
        return self.cluster.api_url(ordinal)

    def start_store(self, count: int) -> None:
        self.cluster.start(count)

    def add_store(self, ordinal: int) -> None:
        self.cluster.add(ordinal)

    def ip(self, ordinal: int) -> str:
        return self.cluster.ip(ordinal)

    def leader(self) -> int:
        """Ordinal of the current leader, waiting for one."""
        return self.cluster.wait_leader()

    def put(self, key: str, value: str) -> bool:
        """One acknowledged write through any running node; False when none took it."""
        for ordinal in self.running():
            try:
                if self.kv.put(self.cluster.api_url(ordinal), key, value):
                    return True
            except (httpx.HTTPError, ValueError):
                continue
        return False

    def read_all(self) -> dict[str, str]:
        """Every key written with ``put`` under ``w/``, read back through the leader."""
        return self.kv.read_prefix(self.cluster.api_url(self.leader()), "w/")

    def read_local(self, ordinal: int, key: str) -> str | None:
        """``key`` as written with ``put``, from node ``ordinal``'s own copy (no leader)."""
        return self.kv.read_local(self.cluster.api_url(ordinal), key)

    def write_entries(self, count: int, *, size: int = 100, first: int = 0) -> None:
        """``count`` writes of ``size`` bytes through the leader, eight clients at once,
        at indexes from ``first`` on."""
        url = self.cluster.api_url(self.leader())
        value = "x" * size
        end = first + count

        def writer(start: int) -> None:
            with httpx.Client(timeout=10) as client:
                for index in range(start, min(end, start + 250)):
                    self.write_one_bulk(client, url, index, value)

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(writer, range(first, end, 250)))

    def running(self) -> list[int]:
        return [o for o, n in sorted(self.cluster.nodes.items()) if n.running]

    def stop_store(self, ordinal: int) -> None:
        proc = self.cluster.nodes[ordinal].proc
        assert proc is not None
        proc.stop()

    def kill_store(self, ordinal: int) -> None:
        proc = self.cluster.nodes[ordinal].proc
        assert proc is not None
        proc.kill()

    def restart_store(self, ordinal: int) -> None:
        self.cluster.restart(ordinal)

    def close_store(self) -> None:
        self.cluster.stop_all()

    def start_sidecar(self, ordinal: int, *, store_url: str | None = None, port: int = 9090,
                      name: str | None = None, env: dict[str, str] | None = None) -> Sidecar:
        sidecar = Sidecar(self.workdir, name=name or f"{self.store}-{ordinal}",
                          ip=self.ip(ordinal), port=port, store=self.store,
                          store_url=store_url or self.store_url(ordinal),
                          extra_env={**self.sidecar_env, **(env or {})})
        sidecar.start()
        self.sidecars[ordinal if name is None else 1000 + len(self.sidecars)] = sidecar
        return sidecar

    def start(self, count: int) -> None:
        self.start_store(count)
        for ordinal in range(count):
            self.start_sidecar(ordinal)

    def close(self) -> None:
        for sidecar in self.sidecars.values():
            sidecar.stop()
        self.close_store()
        self.http.close()

    def logs(self) -> str:
        parts = []
        for path in sorted(self.workdir.rglob("*.log")):
            if "data" in path.relative_to(self.workdir).parts[:-1]:
                continue  # a store's own files (Galera's ddl_recovery.log is binary)
            lines = path.read_text(errors="replace").splitlines()[-15:]
            parts.append(f"--- {path.name}\n" + "\n".join(lines))
        return "\n".join(parts)


H = TypeVar("H", bound=HookStartedCluster)


class HooksHarness(Harness[H]):
    """Pods whose sidecar starts the store by an exec store's hooks: the store is found,
    stopped and killed by its pid; a pod's "API" is its agent."""

    store_in_sidecar = True

    def store_url(self, ordinal: int) -> str:
        return f"http://{self.ip(ordinal)}:9090"

    def running(self) -> list[int]:
        return [o for o in sorted(self.cluster.nodes) if self.cluster.pid(o) is not None]

    def stop_store(self, ordinal: int) -> None:
        self.cluster.signal_store(ordinal, signal.SIGTERM)

    def kill_store(self, ordinal: int) -> None:
        self.cluster.signal_store(ordinal, signal.SIGKILL)

    def remove_through_store(self, ordinal: int) -> None:
        raise NotImplementedError("an exec store's member leaves by its stop hook")

    def write_one_bulk(self, client: httpx.Client, url: str, index: int, value: str) -> None:
        self.kv.put(url, f"bulk/{index}", value)


def exec_pod_env(ip: str, *, config_dir: Path, dns_server: str) -> dict[str, str]:
    """What an exec pod's init and sidecar need on loopback besides the hooks: the plan's
    volume, the cluster's DNS for the peers' agents, and a status run once a second."""
    return {"AGENT_OUTPUT_DIR": str(config_dir), "AGENT_SERVICE": "exec",
            "AGENT_DNS_SERVER": dns_server, "AGENT_CLUSTER_DOMAIN": "cluster.local",
            "AGENT_ADVERTISE": "ip", "POD_IP": ip,
            # A status run starts a client or two: once a second, not five times.
            "AGENT_POLL_INTERVAL_SECONDS": "1", "AGENT_STALE_AFTER_SECONDS": "5",
            "AGENT_STORE_TIMEOUT_SECONDS": "2"}


def last_event(log: str, event: str) -> dict[str, Any] | None:
    """The last ``event`` (a structlog event name) in an agent's JSON log lines."""
    found = None
    for line in log.splitlines():
        try:
            parsed = json.loads(line)
        except ValueError:
            continue
        if isinstance(parsed, dict) and parsed.get("event") == event:
            found = parsed
    return found
