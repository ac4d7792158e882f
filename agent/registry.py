"""The stores the agent knows: one spec a store, its code imported only when used.

Adding a store is a folder ``agent/stores/<name>/`` and one line in ``STORES``; settings,
the CLI, the player and the tests read every store fact from here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.config.base import AgentSettings
    from agent.storekit.capabilities import Backend, Prestart


@dataclass(frozen=True, slots=True)
class StoreSpec:
    """What the agent must know of a store before importing any of its code."""

    name: str  # the value of AGENT_BACKEND, and the folder under agent/stores/
    client_port: int  # the store's client API on every pod (the sidecar polls it)
    peer_port: int  # what peers dial, rendered into peer lists (raft or gossip)
    # The longest a member's removal is expected to take, hand-off and retries included:
    # a leave deadline below it will give up half way on a slow day (BENCHMARKS.md).
    removal_seconds: float
    backend: str  # "module:Class" of its agent.storekit.capabilities.Backend
    prestart: str | None = None  # "module:Class" of its Prestart, when init has work to do
    # "module:Class" of its own settings (an agent.config.base.AgentSettings), if any.
    options: str | None = None
    renders_config: bool = True  # False: the store takes flags only; init may render nothing
    token_header: str | None = None  # the header carrying AGENT_STORE_TOKEN_FILE's token
    # True: a raft store, whose members are removed through its leader (the leave, the
    # repair). False (Galera): membership is the group's view; a member leaves by
    # stopping cleanly, and a full outage is recovered by init's vote.
    raft: bool = True
    # Of the store's client API URL (Galera: mysql; exec: hooks, run in the pod, and
    # peers' views over http from their agents).
    scheme: str = "http"

    @property
    def url_scheme(self) -> str:
        """The scheme of URLs naming this store's nodes (an exec store's are its agents')."""
        return "http" if self.scheme == "hooks" else self.scheme

    @property
    def store_url_schemes(self) -> tuple[str, ...]:
        """The schemes AGENT_STORE_URL and AGENT_SEED_URLS may use for this store."""
        return ("mysql", "unix") if self.scheme == "mysql" else ("http", "https")

    @property
    def default_url(self) -> str:
        """This pod's store API as the sidecar reaches it (AGENT_STORE_URL overrides)."""
        return f"{self.url_scheme}://127.0.0.1:{self.client_port}"

    def backend_class(self) -> type[Backend]:
        cls: type[Backend] = _load(self.backend)
        return cls

    def options_class(self) -> type[AgentSettings] | None:
        if self.options is None:
            return None
        cls: type[AgentSettings] = _load(self.options)
        return cls

    def prestart_class(self) -> type[Prestart] | None:
        if self.prestart is None:
            return None
        cls: type[Prestart] = _load(self.prestart)
        return cls


def _load(target: str) -> Any:
    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


STORES: dict[str, StoreSpec] = {spec.name: spec for spec in (
    StoreSpec("etcd", client_port=2379, peer_port=2380, removal_seconds=10.0,
              backend="agent.stores.etcd.api:EtcdBackend",
              prestart="agent.stores.etcd.prestart:EtcdPrestart",
              options="agent.stores.etcd.options:EtcdOptions"),
    StoreSpec("rqlite", client_port=4001, peer_port=4002, removal_seconds=10.0,
              backend="agent.stores.rqlite.api:RqliteBackend",
              prestart="agent.stores.rqlite.prestart:RqlitePrestart", renders_config=False,
              options="agent.stores.rqlite.options:RqliteOptions"),
    # Consul's own graceful leave alone takes about 13 s.
    StoreSpec("consul", client_port=8500, peer_port=8301, removal_seconds=25.0,
              backend="agent.stores.consul.api:ConsulBackend", token_header="X-Consul-Token"),
    # A clean stop (the leave) took 1.6-2.8 s here; the client port is MySQL's.
    StoreSpec("galera", client_port=3306, peer_port=4567, removal_seconds=5.0,
              backend="agent.stores.galera.api:GaleraBackend",
              prestart="agent.stores.galera.prestart:GaleraPrestart", raft=False,
              scheme="mysql", options="agent.stores.galera.options:GaleraOptions"),
    # Any store through the RSS operator's hooks, run in the pod. Its "client API" is
    # the agent's own port: a peer's view comes from its agent's /status.
    StoreSpec("exec", client_port=9090, peer_port=9090, removal_seconds=30.0,
              backend="agent.stores.exec.api:ExecBackend",
              prestart="agent.stores.exec.prestart:ExecPrestart", renders_config=False,
              raft=False, scheme="hooks", options="agent.stores.exec.options:ExecOptions"),
)}


def raft_stores() -> list[str]:
    """The registered raft stores, sorted (the leave and repair tests run each)."""
    return sorted(name for name, spec in STORES.items() if spec.raft)


def store_spec(name: str) -> StoreSpec:
    """The spec registered as ``name``; KeyError naming the known ones."""
    try:
        return STORES[name]
    except KeyError:
        raise KeyError(f"unknown store {name!r}; known: {', '.join(STORES)}") from None
