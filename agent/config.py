"""Settings: one model read from AGENT_* env, Downward API env and flags; no I/O."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

from agent.errors import ConfigError
from agent.identity import IdentityError, check_dns_name, is_dns_label, parse_pod_name

ENV_PREFIX = "AGENT_"
# The longest duration any setting takes (a week): larger values overflow OS timers.
MAX_DURATION_SECONDS = 7 * 24 * 3600.0
VAR_PREFIX = "AGENT_VAR_"
DEFAULT_CLUSTER_DOMAIN = "cluster.local"
DEFAULT_PEER_PORTS: dict[str, int] = {"etcd": 2380, "rqlite": 4002, "consul": 8301}
DEFAULT_CLIENT_PORTS: dict[str, int] = {"etcd": 2379, "rqlite": 4001, "consul": 8500}

Backend = Literal["rqlite", "etcd", "consul"]
# The longest a member's removal is expected to take, hand-off and retries included: a
# leave deadline below it will give up half way on a slow day (BENCHMARKS.md). Consul's
# own graceful leave alone takes about 13 s.
LEAVE_SECONDS_NEEDED: dict[str, float] = {"etcd": 10.0, "rqlite": 10.0, "consul": 25.0}


class Settings(BaseSettings):
    """Everything the agent can be told. Each field is an env var and a flag."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="ignore",
        populate_by_name=True,
        env_ignore_empty=True,
        frozen=True,
        # inf/nan pass float parsing but break every timer (socket timeouts overflow).
        allow_inf_nan=False,
    )

    # --- identity (Downward API) -------------------------------------------------
    pod_name: str | None = Field(
        default=None,
        validation_alias="POD_NAME",
        description="This pod's name (Downward API metadata.name), e.g. consul-2.",
    )
    namespace: str | None = Field(
        default=None,
        validation_alias="POD_NAMESPACE",
        description="This pod's namespace (Downward API metadata.namespace).",
    )
    pod_ip: str | None = Field(
        default=None,
        validation_alias="POD_IP",
        description="This pod's IP (Downward API status.podIP); init waits until its "
        "own DNS name resolves to it.",
    )

    # --- cluster -----------------------------------------------------------------
    backend: Backend | None = Field(
        default=None,
        description="The store this pod runs: rqlite, etcd or consul. Picks default ports.",
    )
    service: str | None = Field(
        default=None,
        description="Name of the StatefulSet's governing headless Service.",
    )
    cluster_domain: str | None = Field(
        default=None,
        description="Cluster DNS domain. Default: taken from the 'search' line of "
        "/etc/resolv.conf (the entry after 'svc.'), else cluster.local.",
    )
    bootstrap_expect: int = Field(
        default=3,
        ge=1,
        le=99,
        description="Pods (ordinals 0..N-1) that form a new cluster; they are always in "
        "the rendered peer list. Default 3, the smallest cluster surviving one loss.",
    )
    peer_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Port in rendered peer host:port pairs. Default per backend: etcd "
        "2380, rqlite 4002, consul 8301.",
    )
    client_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Port of the store's client API on every pod. Default per backend: "
        "etcd 2379, rqlite 4001, consul 8500.",
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
    node_id: str | None = Field(
        default=None,
        description="The store's id for this member (rqlite -node-id). Default: the pod "
        "name, stable across restarts; set it to the pod FQDN if rqlited uses that.",
    )
    srv_port_name: str | None = Field(
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
        description="Where rendered files go, usually an emptyDir shared with the store.",
    )
    template_suffix: str = Field(
        default=".j2",
        min_length=1,
        description="Files ending in this are Jinja2 templates (suffix dropped on output); "
        "other files are copied (with the namespace rewrite when enabled).",
    )
    namespace_rewrite: str | None = Field(
        default=None,
        description="Namespace to rewrite in cluster DNS names of copied files "
        "(x.<this>.svc.<domain> -> x.<pod ns>.svc.<cluster domain>), typically "
        "'default'. Unset: files are copied verbatim.",
    )

    # --- DNS ---------------------------------------------------------------------
    dns_server: str | None = Field(
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
        description="init waits until ordinals 0..bootstrap_expect-1 resolve. Only with "
        "podManagementPolicy: Parallel; under OrderedReady the later pods cannot exist yet.",
    )

    # --- sidecar -------------------------------------------------------------------
    store_url: str | None = Field(
        default=None,
        description="Base URL of this pod's store API. Default per backend: etcd "
        "http://127.0.0.1:2379, rqlite http://127.0.0.1:4001.",
    )
    listen: str = Field(
        default="0.0.0.0:9090",
        description="Address of the sidecar's HTTP server (probes, status, metrics).",
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

    # --- leave ---------------------------------------------------------------------
    leave_policy: Literal["scale-down", "always", "never"] = Field(
        default="scale-down",
        description="When a terminating pod removes itself from the cluster: scale-down "
        "(only when its ordinal >= the StatefulSet's spec.replicas), always, never.",
    )
    statefulset: str | None = Field(
        default=None,
        description="The owning StatefulSet. Default: derived from the pod name.",
    )
    termination_grace_period_seconds: float = Field(
        default=30.0,
        gt=0,
        description="The pod's terminationGracePeriodSeconds (Kubernetes default 30); the "
        "leave procedure must end before it.",
    )
    leave_margin_seconds: float = Field(
        default=5.0,
        ge=0,
        description="Time kept back from the grace period for the store's own shutdown.",
    )
    leave_token_file: Path | None = Field(
        default=None,
        description="If set, POST /leave also accepts non-loopback clients that send "
        "'Authorization: Bearer <this file's content>'.",
    )
    native_sidecar: bool = Field(
        default=False,
        description="The agent runs as a native sidecar (an init container with "
        "restartPolicy Always), so it stops only after the store: the store container's "
        "preStop GET /leave/wait then starts the leave instead of only waiting for it. The "
        "decision still comes from the Kubernetes API, never from the caller.",
    )
    kube_api_url: str | None = Field(
        default=None,
        description="Kubernetes API URL. Default: in-cluster (KUBERNETES_SERVICE_HOST/PORT "
        "and the pod's service account).",
    )
    kube_token_file: Path = Field(
        default=Path("/var/run/secrets/kubernetes.io/serviceaccount/token"),
        description="Service-account token, re-read when the API answers 401 (rotation).",
    )
    kube_ca_file: Path | None = Field(
        default=None, description="CA of the Kubernetes API (with AGENT_KUBE_API_URL)."
    )
    kube_timeout_seconds: float = Field(
        default=5.0, gt=0, description="Budget of one Kubernetes API request."
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

    @field_validator("*", mode="after")
    @classmethod
    def _durations_bounded(cls, value: Any, info: ValidationInfo) -> Any:
        """Every ``*_seconds`` setting is at most a week: larger ones overflow timers."""
        name = info.field_name or ""
        if name.endswith("_seconds") and isinstance(value, float) \
                and value > MAX_DURATION_SECONDS:
            raise ValueError(f"at most {MAX_DURATION_SECONDS:g} seconds (a week)")
        return value

    @field_validator("namespace", "service")
    @classmethod
    def _label(cls, value: str | None) -> str | None:
        if value is not None and not is_dns_label(value):
            raise ValueError(f"{value!r} is not a DNS-1123 label")
        return value

    @field_validator("pod_name")
    @classmethod
    def _pod_name(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_pod_name(value)
            except IdentityError as exc:
                raise ValueError(exc.message) from None
        return value

    @field_validator("cluster_domain")
    @classmethod
    def _domain(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return check_dns_name(value)
        except IdentityError as exc:
            raise ValueError(exc.message) from None

    @field_validator("pod_ip")
    @classmethod
    def _ip(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address") from None

    @field_validator("dns_server")
    @classmethod
    def _dns_server(cls, value: str | None) -> str | None:
        if value is not None:
            parse_host_port(value, default_port=53)
        return value

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        parse_host_port(value, default_port=9090)
        return value

    @field_validator("store_url", "kube_api_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value.rstrip("/") if value is not None else None

    @field_validator("srv_port_name", "namespace_rewrite", "statefulset")
    @classmethod
    def _optional_label(cls, value: str | None) -> str | None:
        if value is not None and not is_dns_label(value):
            raise ValueError(f"{value!r} is not a DNS-1123 label")
        return value

    def nameserver(self) -> tuple[str, int] | None:
        """The resolver override as (ip, port), or None for the system resolver."""
        return None if self.dns_server is None else parse_host_port(self.dns_server, 53)

    def seed_url_list(self) -> list[str]:
        """``seed_urls`` as a list."""
        return [u.strip().rstrip("/") for u in (self.seed_urls or "").split(",") if u.strip()]

    def leave_deadline_seconds(self) -> float:
        """How long the leave procedure may take: the grace period minus the margin."""
        return self.termination_grace_period_seconds - self.leave_margin_seconds

    def leave_time_problem(self) -> str | None:
        """Why the leave deadline is too short for this store's removal, if it is."""
        needed = LEAVE_SECONDS_NEEDED.get(self.backend or "")
        deadline = self.leave_deadline_seconds()
        if needed is None or deadline >= needed:
            return None
        return (f"the leave deadline ({deadline:g} s: AGENT_TERMINATION_GRACE_PERIOD_SECONDS "
                f"{self.termination_grace_period_seconds:g} minus AGENT_LEAVE_MARGIN_SECONDS "
                f"{self.leave_margin_seconds:g}) is shorter than a {self.backend} removal "
                f"can take ({needed:g} s); raise the pod's terminationGracePeriodSeconds "
                "and the setting with it")

    def statefulset_name(self) -> str | None:
        """The configured StatefulSet, else the one the pod name implies."""
        if self.statefulset:
            return self.statefulset
        return parse_pod_name(self.pod_name).statefulset if self.pod_name else None

    def listen_address(self) -> tuple[str, int]:
        """The sidecar's (host, port)."""
        return parse_host_port(self.listen, 9090)

    def effective_client_port(self) -> int | None:
        """The configured client port, else the backend's usual one."""
        if self.client_port is not None:
            return self.client_port
        return DEFAULT_CLIENT_PORTS.get(self.backend) if self.backend else None

    def effective_peer_port(self) -> int | None:
        """The configured peer port, else the backend's usual one."""
        if self.peer_port is not None:
            return self.peer_port
        return DEFAULT_PEER_PORTS.get(self.backend) if self.backend else None


def host_port(host: str, port: int | str) -> str:
    """``host:port``, bracketing an IPv6 address (the inverse of parse_host_port)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_host_port(value: str, default_port: int) -> tuple[str, int]:
    """Parse ``ip``, ``ip:port`` or ``[v6]:port``; the host must be an IP address."""
    host, port_text = value, ""
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"{value!r} is not [ipv6]:port")
        port_text = rest[1:]
    elif value.count(":") == 1:
        host, port_text = value.split(":")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{value!r}: host must be an IP address") from None
    port = default_port
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"{value!r}: port must be 1-65535")
        port = int(port_text)
    return str(address), port


# Settings each command cannot work without.
# rqlited takes flags only: its init may have nothing to render.
OPTIONAL_FOR_RQLITE_INIT = ("templates_dir", "output_dir")
REQUIRED: dict[str, tuple[str, ...]] = {
    "init": ("pod_name", "namespace", "pod_ip", "service", "templates_dir", "output_dir"),
    "render": ("pod_name", "namespace", "service", "templates_dir", "output_dir"),
    "peers": ("pod_name", "namespace", "service"),
    "run": ("backend",),
}


def env_name(field: str) -> str:
    """The environment variable that sets ``field``."""
    info = Settings.model_fields[field]
    alias = info.validation_alias
    return alias if isinstance(alias, str) else ENV_PREFIX + field.upper()


def flag_name(field: str) -> str:
    """The command-line flag that sets ``field``."""
    return "--" + field.replace("_", "-")


def describe(field: str) -> str:
    """``ENV (--flag)``, how a problem names a setting."""
    return f"{env_name(field)} ({flag_name(field)})"


def fields() -> dict[str, FieldInfo]:
    """All settings fields, in declaration order."""
    return dict(Settings.model_fields)


def _field_of(loc: tuple[int | str, ...]) -> str | None:
    if not loc:
        return None
    head = str(loc[0])
    for name, info in Settings.model_fields.items():
        if head in (name, info.validation_alias):
            return name
    return None


def load_settings(
    command: str, flags: Mapping[str, Any], environ: Mapping[str, str]
) -> Settings:
    """Build Settings from flags (winning) and env; raise ConfigError naming every problem.

    ``environ`` must be the process environment the Settings source reads; it is
    passed in only to check which required settings were given at all.
    """
    problems: list[str] = []
    given = {key: value for key, value in flags.items() if value is not None}
    settings: Settings | None = None
    failed: set[str] = set()
    try:
        settings = Settings(**given)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            field = _field_of(error["loc"])
            if field is not None:
                failed.add(field)
            where = describe(field) if field else ".".join(map(str, error["loc"]))
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{where}: {message} (got {error.get('input')!r})")
    for field in REQUIRED.get(command, ()):
        if field in failed or (field in OPTIONAL_FOR_RQLITE_INIT and settings is not None
                               and settings.backend == "rqlite"):
            continue
        if given.get(field) in (None, "") and not environ.get(env_name(field)):
            problems.append(f"{describe(field)}: required by '{command}' but not set")
    if settings is not None and not problems:
        problems.extend(cross_check(settings))
    if problems:
        raise ConfigError(f"{len(problems)} configuration problem(s)", problems=problems)
    assert settings is not None
    return settings


def cross_check(settings: Settings) -> list[str]:
    """Problems that involve more than one setting."""
    problems: list[str] = []
    templates, output = settings.templates_dir, settings.output_dir
    if templates is not None and output is not None:
        t, o = templates.resolve(), output.resolve()
        if t == o or t in o.parents or o in t.parents:
            problems.append(
                f"{describe('output_dir')}: must not overlap {describe('templates_dir')} "
                f"({output} vs {templates})"
            )
    if (settings.store_cert_file is None) != (settings.store_key_file is None):
        problems.append(
            f"{describe('store_cert_file')} and {describe('store_key_file')}: set both or "
            "neither"
        )
    if settings.store_password_file is not None and not settings.store_username:
        problems.append(f"{describe('store_password_file')}: needs {describe('store_username')}")
    if settings.stale_after_seconds < settings.poll_interval_seconds:
        problems.append(
            f"{describe('stale_after_seconds')}: must be at least "
            f"{describe('poll_interval_seconds')} ({settings.stale_after_seconds} < "
            f"{settings.poll_interval_seconds})"
        )
    if settings.leave_margin_seconds >= settings.termination_grace_period_seconds:
        problems.append(
            f"{describe('leave_margin_seconds')}: must be less than "
            f"{describe('termination_grace_period_seconds')}"
        )
    if settings.template_suffix in ("/", "."):
        problems.append(
            f"{describe('template_suffix')}: {settings.template_suffix!r} is not a suffix"
        )
    return problems


def cluster_domain_from_resolv_conf(text: str, namespace: str | None = None) -> str | None:
    """The cluster domain implied by a pod's resolv.conf ``search`` line, if any.

    Kubelet writes ``search <ns>.svc.<domain> svc.<domain> <domain>``.
    """
    for line in text.splitlines():
        parts = line.split()
        if not parts or parts[0] != "search":
            continue
        entries = [entry.rstrip(".").lower() for entry in parts[1:]]
        # The namespace entry first: a namespace called "svc" would fool the generic rule.
        prefixes = ([f"{namespace}.svc."] if namespace else []) + ["svc."]
        for prefix in prefixes:
            for entry in entries:
                if entry.startswith(prefix) and len(entry) > len(prefix):
                    return entry[len(prefix) :]
    return None


def template_vars(environ: Mapping[str, str]) -> dict[str, str]:
    """``AGENT_VAR_FOO=bar`` env entries as ``{"foo": "bar"}`` for templates."""
    return {
        key[len(VAR_PREFIX) :].lower(): value
        for key, value in environ.items()
        if key.upper().startswith(VAR_PREFIX) and len(key) > len(VAR_PREFIX)
    }
