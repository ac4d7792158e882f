"""Settings every store uses, read from AGENT_* env, Downward API env and flags; no I/O."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import Field, PrivateAttr

from agent.addresses import parse_host_port
from agent.config.base import ENV_PREFIX, AgentSettings
from agent.config.leaving import LeaveSettings
from agent.config.types import (
    LISTEN_PORT,
    DnsLabel,
    DnsServer,
    DomainName,
    IpAddress,
    ListenAddress,
    PodName,
    StoreName,
    StoreUrl,
)
from agent.identity import PodIdentity, parse_pod_name
from agent.registry import STORES, StoreSpec

__all__ = ["ENV_PREFIX", "Settings"]
Options = TypeVar("Options", bound=AgentSettings)


def _per_store(what: str) -> str:
    """``etcd 2379, rqlite 4001, ...`` for a field's description."""
    return ", ".join(f"{spec.name} {getattr(spec, what)}" for spec in STORES.values())


class Settings(LeaveSettings):
    """What the agent can be told whatever its store. Each field is an env var and a flag;
    a store's own settings are its options model (``options()``)."""

    # The configured store's options, as the loader read them (agent.config.loading).
    _options: AgentSettings | None = PrivateAttr(default=None)

    # --- identity (Downward API) -------------------------------------------------
    pod_name: PodName | None = Field(
        default=None,
        validation_alias="POD_NAME",
        description="This pod's name (Downward API metadata.name), e.g. consul-2.",
    )
    namespace: DnsLabel | None = Field(
        default=None,
        validation_alias="POD_NAMESPACE",
        description="This pod's namespace (Downward API metadata.namespace).",
    )
    pod_ip: IpAddress | None = Field(
        default=None,
        validation_alias="POD_IP",
        description="This pod's IP (Downward API status.podIP); init waits until its "
        "own DNS name resolves to it.",
    )

    # --- cluster -----------------------------------------------------------------
    backend: StoreName | None = Field(
        default=None,
        description=f"The store this pod runs: {', '.join(STORES)}. Picks default ports.",
    )
    service: DnsLabel | None = Field(
        default=None,
        description="Name of the StatefulSet's governing headless Service.",
    )
    cluster_domain: DomainName | None = Field(
        default=None,
        description="Cluster DNS domain. Default: taken from the 'search' line of "
        "/etc/resolv.conf (the entry after 'svc.'), else cluster.local.",
    )
    bootstrap_expect: int = Field(
        default=3,
        ge=1,
        le=99,
        description="Pods (the first N ordinals) that form a new cluster; they are "
        "always in the rendered peer list. Default 3, the smallest cluster surviving one "
        "loss.",
    )
    ordinals_start: int = Field(
        default=0,
        ge=0,
        le=1_000_000,
        description="The StatefulSet's spec.ordinals.start: its first pod's ordinal. The "
        "bootstrap members are ordinals start..start+bootstrap_expect-1. Set it with the "
        "StatefulSet's.",
    )
    peer_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Port in rendered peer host:port pairs. Default per store: "
        f"{_per_store('peer_port')}.",
    )
    client_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Port of the store's client API on every pod. Default per store: "
        f"{_per_store('client_port')}.",
    )
    advertise: Literal["fqdn", "ip"] = Field(
        default="fqdn",
        description="What this member advertises to its peers (etcd join): its stable "
        "DNS name, or POD_IP where peers cannot resolve the headless Service.",
    )
    data_dir: Path | None = Field(
        default=None,
        description="The store's data dir, mounted into the init container too, so init "
        "can tell a restart from a removed member coming back (etcd, rqlite).",
    )
    srv_port_name: DnsLabel | None = Field(
        default=None,
        description="Named Service port to look up as SRV (_<name>._tcp.<svc>...). "
        "Unset: discovery uses A/AAAA records only.",
    )

    # --- rendering ---------------------------------------------------------------
    templates_dir: Path | None = Field(
        default=None,
        description="Directory of templates and configs, usually a read-only ConfigMap.",
    )
    output_dir: Path | None = Field(
        default=None,
        description="Where rendered files go, usually an emptyDir shared with the store. "
        "Galera's sidecar, given it (mounted writable), takes wsrep-new-cluster out of "
        "the *.cnf there once another member has joined the seed: a restart of mariadbd "
        "alone then joins.",
    )
    template_suffix: str = Field(
        default=".j2",
        min_length=1,
        description="Files ending in this are Jinja2 templates (suffix dropped on output); "
        "other files are copied (with the namespace rewrite when enabled).",
    )
    namespace_rewrite: DnsLabel | None = Field(
        default=None,
        description="Namespace to rewrite in cluster DNS names of copied files "
        "(x.<this>.svc.<domain> -> x.<pod ns>.svc.<cluster domain>), typically "
        "'default'. Unset: files are copied verbatim.",
    )

    # --- DNS ---------------------------------------------------------------------
    dns_server: DnsServer | None = Field(
        default=None,
        description="Resolver to ask instead of /etc/resolv.conf's, as ip[:port] "
        "([v6]:port for IPv6).",
    )
    dns_query_timeout_seconds: float = Field(
        default=2.0,
        gt=0,
        description="Budget of one DNS query; a cluster resolver answers in milliseconds.",
    )
    dns_wait_timeout_seconds: float = Field(
        default=300.0,
        gt=0,
        description="Deadline for init's waits (own name, bootstrap peers). Five minutes "
        "covers slow endpoint propagation without hiding a broken Service forever.",
    )
    wait_for_self: bool = Field(
        default=True,
        description="init waits until this pod's FQDN resolves to POD_IP before rendering.",
    )
    wait_for_peers: bool = Field(
        default=False,
        description="init waits until the bootstrap ordinals resolve. Only with "
        "podManagementPolicy: Parallel; under OrderedReady the later pods cannot exist yet.",
    )

    # --- sidecar -------------------------------------------------------------------
    store_url: StoreUrl | None = Field(
        default=None,
        description="Base URL of this pod's store API. Default: http://127.0.0.1:<the "
        "store's client port> (Galera: mysql://127.0.0.1:3306, or unix:///<socket>).",
    )
    listen: ListenAddress = Field(
        default=f"0.0.0.0:{LISTEN_PORT}",
        description="Address of the sidecar's HTTP server (probes, status, metrics); "
        "init answers its peers' GET /init there while it runs (etcd, rqlite).",
    )
    poll_interval_seconds: float = Field(
        default=1.0,
        gt=0,
        description="How often the sidecar reads the store. Probes are answered from "
        "the last reading, so this bounds how stale readiness can be.",
    )
    store_timeout_seconds: float = Field(
        default=2.0,
        gt=0,
        description="Budget of one request to a store API; a healthy store answers in "
        "milliseconds.",
    )
    stale_after_seconds: float = Field(
        default=5.0,
        gt=0,
        description="Readiness fails when the local store has not answered for this "
        "long; shorter blips (one failed poll) do not flap the probe.",
    )
    max_lag_entries: int = Field(
        default=100,
        ge=0,
        description="A node is caught up when its applied raft index is at most this "
        "many entries behind the leader's commit index.",
    )
    accept_learner: bool = Field(
        default=False,
        description="Report ready as a learner / non-voter too (read replicas).",
    )
    liveness_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="/livez fails when the agent's own poll loop has not ticked for "
        "this long. Never depends on the cluster.",
    )
    shutdown_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        description="Deadline for a clean exit after SIGTERM/SIGINT.",
    )
    seed_urls: str | None = Field(
        default=None,
        description="Comma-separated store API URLs of peers, asked when this node's store "
        "cannot list the members (an etcd learner) or does not answer. Default: the "
        "peers' stable names (needs AGENT_SERVICE and POD_NAMESPACE).",
    )
    promote_learner: bool = Field(
        default=True,
        description="The sidecar promotes this node from learner to voter once it has "
        "caught up (etcd).",
    )
    store_username: str | None = Field(
        default=None, description="Basic-auth user for the store API (rqlite)."
    )
    store_password_file: Path | None = Field(
        default=None,
        description="File holding the basic-auth password (a mounted Secret); never "
        "an env value, so it stays out of pod specs and logs.",
    )
    store_token_file: Path | None = Field(
        default=None,
        description="File holding the store's ACL token (Consul: sent as X-Consul-Token; "
        "the token needs operator:read, agent:read, and for leave operator:write and "
        "agent:write).",
    )
    store_ca_file: Path | None = Field(
        default=None, description="CA bundle to verify the store's TLS certificate."
    )
    store_cert_file: Path | None = Field(
        default=None, description="Client certificate for the store API (etcd mTLS)."
    )
    store_key_file: Path | None = Field(
        default=None, description="Key of the client certificate."
    )

    resolv_conf_path: Path = Field(
        default=Path("/etc/resolv.conf"),
        description="Where to read the search line that gives the default cluster domain.",
    )

    # --- logging -----------------------------------------------------------------
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto",
        description="auto: console on a TTY, JSON lines otherwise (as in a pod).",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Lowest level logged."
    )


    def with_options(self, options: AgentSettings) -> Settings:
        """These settings with the store's options attached (the loader's, or a test's)."""
        copy = self.model_copy()
        copy._options = options
        return copy

    def options(self, kind: type[Options]) -> Options:
        """The store's options of type ``kind``: those loaded with these settings, else
        read from the environment now (settings made in code, with their defaults)."""
        if isinstance(self._options, kind):
            return self._options
        return kind()

    def nameserver(self) -> tuple[str, int] | None:
        """The resolver override as (ip, port), or None for the system resolver."""
        return None if self.dns_server is None else parse_host_port(self.dns_server, 53)

    def seed_url_list(self) -> list[str]:
        """``seed_urls`` as a list."""
        return [u.strip().rstrip("/") for u in (self.seed_urls or "").split(",") if u.strip()]

    def leave_time_problem(self) -> str | None:
        """Why the leave deadline is too short for this store's removal, if it is."""
        spec = self.store()
        deadline = self.leave_deadline_seconds()
        if spec is None or deadline >= spec.removal_seconds:
            return None
        return (f"the leave deadline ({deadline:g} s: AGENT_TERMINATION_GRACE_PERIOD_SECONDS "
                f"{self.termination_grace_period_seconds:g} minus AGENT_LEAVE_MARGIN_SECONDS "
                f"{self.leave_margin_seconds:g}) is shorter than a {spec.name} removal "
                f"can take ({spec.removal_seconds:g} s); raise the pod's "
                "terminationGracePeriodSeconds and the setting with it")

    @cached_property
    def pod(self) -> PodIdentity | None:
        """This pod's StatefulSet and ordinal, from its name (parsed once; the name was
        checked when the settings loaded)."""
        return parse_pod_name(self.pod_name) if self.pod_name else None

    def statefulset_name(self) -> str | None:
        """The configured StatefulSet, else the one the pod name implies."""
        if self.statefulset:
            return self.statefulset
        return self.pod.statefulset if self.pod else None

    def listen_address(self) -> tuple[str, int]:
        """The sidecar's (host, port)."""
        return parse_host_port(self.listen, LISTEN_PORT)

    def store(self) -> StoreSpec | None:
        """The registered spec of the configured store (AGENT_BACKEND), if one is set."""
        return STORES[self.backend] if self.backend else None

    def effective_client_port(self) -> int | None:
        """The configured client port, else the store's usual one."""
        spec = self.store()
        return self.client_port or (spec.client_port if spec else None)

    def bootstrap_ordinals(self) -> range:
        """The ordinals of the pods that form a new cluster."""
        return range(self.ordinals_start, self.ordinals_start + self.bootstrap_expect)

    def effective_peer_port(self) -> int | None:
        """The configured peer port, else the store's usual one."""
        spec = self.store()
        return self.peer_port or (spec.peer_port if spec else None)

    def store_url_or_default(self) -> str | None:
        """The configured store URL, else this pod's store on its usual port."""
        spec = self.store()
        return self.store_url or (spec.default_url if spec else None)
