"""Galera for the tests and the player: Debian's mariadbd + galera-4 on loopback, run as mysql."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import jinja2

from agent.atomic import write_atomically
from player.peers import ROOT, agent_binary, mariadbd_binary
from player.stores.base import Harness, Image, Kv, LoopbackCluster, last_event
from player.wait import wait_until

if TYPE_CHECKING:
    from player.statefulset import StatefulSetPlayer

TEMPLATES = ROOT / "k8s" / "galera" / "templates"
ENTRYPOINT = Path(__file__).resolve().parents[2] / "images" / "mariadb" / "docker-entrypoint.sh"
# The users a new cluster's seed creates (the k8s example's init SQL does the same):
# the agent's status user (USAGE only) and the tests' client.
STATUS_USER, STATUS_PASSWORD = "sts-agent", "status-password"
KV_USER, KV_PASSWORD = "kv", "kv-password"
# Every wsrep_ status variable (the underscore escaped: a LIKE pattern).
WSREP_STATUS = "SHOW GLOBAL STATUS LIKE 'wsrep\\_%'"
# The tests' client: what a k8s example's cluster is given (as root) before a writer starts.
KV_SQL = f"""
CREATE USER IF NOT EXISTS '{KV_USER}'@'%' IDENTIFIED BY '{KV_PASSWORD}';
GRANT ALL PRIVILEGES ON *.* TO '{KV_USER}'@'%';
CREATE DATABASE IF NOT EXISTS kv;
CREATE TABLE IF NOT EXISTS kv.kv (k VARCHAR(191) PRIMARY KEY, v TEXT);
"""
INIT_SQL = f"""
CREATE USER IF NOT EXISTS '{STATUS_USER}'@'%' IDENTIFIED BY '{STATUS_PASSWORD}';
{KV_SQL}"""


class SqlRefused(Exception):
    """mariadbd did not take a statement (not up, not in a Primary component)."""


def root_sql(run_dir: Path, statement: str) -> str:
    """``statement`` as root over the mariadbd socket in ``run_dir`` (a pod's run
    volume on this host); its output. The client connects from inside the directory: a
    pod's host path is longer than a socket address may be (108 bytes)."""
    answer = subprocess.run(["mariadb", "--socket=./mysqld.sock", "-uroot", "-N", "-B", "-e",
                             statement], capture_output=True, text=True, timeout=30,
                            cwd=run_dir)
    if answer.returncode != 0:
        raise SqlRefused(f"{run_dir}: {answer.stderr.strip()}")
    return answer.stdout


def galera_plan(log: str) -> dict[str, Any] | None:
    """The last decision (its ``galera_plan`` event) in an init's JSON log lines."""
    return last_event(log, "galera_plan")


def entrypoint(tag: str = "") -> str:
    """The image's entrypoint as the player plays it (images/mariadb/docker-entrypoint.sh)."""
    mariadbd_binary(tag)
    return str(ENTRYPOINT)


IMAGES = {
    "mariadb": Image(("docker-entrypoint.sh",), {"docker-entrypoint.sh": entrypoint,
                                                 "mariadbd": mariadbd_binary}),
    # Our Dockerfile's galera-init target: the agent, mariadbd beside it (--wsrep-recover).
    "sts-agent-galera": Image(("sts-agent",), {"sts-agent": agent_binary,
                                               "mariadbd": mariadbd_binary}),
}


def _host_port(url: str) -> tuple[str, int]:
    parsed = httpx.URL(url)
    return str(parsed.host), int(parsed.port or 3306)


def kv_connection(host: str, port: int = 3306, *, database: str | None = None) -> Any:
    """A PyMySQL connection as the kv user, in plain text (``ssl_disabled``: PyMySQL 2.2
    otherwise builds a TLS context, loading every system CA, for each connection; the
    writer's thirty a second took most of a test's CPU on Galera)."""
    import pymysql

    return pymysql.connect(host=host, port=port, user=KV_USER, password=KV_PASSWORD,
                           database=database, connect_timeout=5, read_timeout=10,
                           write_timeout=10, autocommit=True, ssl_disabled=True)


class GaleraKv(Kv):
    """Keys and values as rows of ``kv.kv``, over MySQL's protocol as the ``kv`` user."""

    @staticmethod
    def setup(player: StatefulSetPlayer) -> None:
        """The kv user and table, as root through the first ready pod's socket."""
        pod = next(p for _, p in sorted(player.pods.items()) if p.ready)
        root_sql(pod.volume("run"), KV_SQL)

    @contextmanager
    def _connect(self, url: str) -> Iterator[Any]:
        """A connection per call (kv_connection)."""
        host, port = _host_port(url)
        connection = kv_connection(host, port, database="kv")
        try:
            yield connection
        finally:
            connection.close()

    def put(self, url: str, key: str, value: str) -> bool:
        import pymysql

        try:
            with self._connect(url) as connection, connection.cursor() as cursor:
                cursor.execute("REPLACE INTO kv (k, v) VALUES (%s, %s)", (key, value))
        except pymysql.MySQLError as exc:
            self.refusal = str(exc)[:120]
            return False
        return True

    def _select(self, url: str, sql: str, args: tuple[Any, ...], *,
                causal: bool) -> list[tuple[Any, ...]]:
        """The rows; a ValueError naming the node when it gives no answer."""
        import pymysql

        try:
            with self._connect(url) as connection, connection.cursor() as cursor:
                if causal:  # wait until every write the cluster committed is applied here
                    cursor.execute("SET SESSION wsrep_sync_wait = 1")
                cursor.execute(sql, args)
                return list(cursor.fetchall())
        except pymysql.MySQLError as exc:
            raise ValueError(f"{url}: {exc}") from exc

    def read_prefix(self, url: str, prefix: str) -> dict[str, str]:
        rows = self._select(url, "SELECT k, v FROM kv WHERE k LIKE %s",
                            (prefix.replace("%", r"\%") + "%",), causal=True)
        return {str(k): str(v) for k, v in rows}

    def get(self, url: str, key: str) -> str | None:
        rows = self._select(url, "SELECT v FROM kv WHERE k = %s", (key,), causal=True)
        return str(rows[0][0]) if rows else None

    def read_local(self, url: str, key: str) -> str | None:
        rows = self._select(url, "SELECT v FROM kv WHERE k = %s", (key,), causal=False)
        return str(rows[0][0]) if rows else None


# The template variables of the harness's nodes: small, many nodes share a machine; full
# copies by rsync (the pods' images copy by mariabackup, which the host does not have,
# and which refuses the command-line options that give each host node its paths).
TEST_VARS = {"buffer_pool": "32M", "gcache_size": "16M", "sst_method": "rsync"}


def render_config(ip: str, name: str, cluster_address: str, *, new_cluster: bool,
                  statefulset: str = "galera", donors: str = "",
                  template_vars: dict[str, str] | None = None) -> str:
    """The k8s example's galera.cnf.j2 with the variables init gives it; the template's
    variables ``template_vars`` (``{}``: the template's own defaults), else TEST_VARS."""
    template = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(
        (TEMPLATES / "galera.cnf.j2").read_text())
    return template.render(
        pod_ip=ip, pod_name=name, statefulset=statefulset,
        galera_cluster_address=cluster_address, galera_new_cluster=new_cluster,
        galera_reason="started by the test harness", galera_donors=donors,
        vars=TEST_VARS if template_vars is None else template_vars)


def allow_mysql_through(path: Path) -> None:
    """Let mariadbd (user mysql) reach ``path``: its ancestors get the search bit (pytest
    makes its temporary root private to its user)."""
    for parent in [path, *path.parents]:
        if parent == Path("/") or parent == Path("/tmp"):
            break
        mode = parent.stat().st_mode & 0o7777
        if mode & 0o011 != 0o011:
            os.chmod(parent, mode | 0o011)


@dataclass
class GaleraCluster(LoopbackCluster):
    """mariadbd nodes ``galera-<i>`` on ``127.0.60.<i+1>`` (SQL 3306, group 4567)."""

    subnet: int = 60
    prefix = "galera"
    log_name = "mariadbd.log"

    def api_url(self, ordinal: int) -> str:
        return f"mysql://{self.ip(ordinal)}:3306"

    def node_dir(self, ordinal: int) -> Path:
        return self.workdir / f"{self.prefix}-{ordinal}"

    def socket(self, ordinal: int) -> Path:
        return self.node_dir(ordinal) / "run" / "mysqld.sock"

    def prepare_dirs(self, ordinal: int) -> None:
        """The node's directories, owned by mysql."""
        node = self.node_dir(ordinal)
        for sub in ("data", "run", "tmp"):
            (node / sub).mkdir(parents=True, exist_ok=True)
        allow_mysql_through(node)
        subprocess.run(["chown", "-R", "mysql:mysql", *(str(node / sub)
                                                        for sub in ("data", "run", "tmp"))],
                       check=True)
        (node / "init.sql").write_text(INIT_SQL)

    def store_command(self, ordinal: int, config: Path) -> list[str]:
        """The image's entrypoint and mariadbd with the pod's config."""
        node = self.node_dir(ordinal)
        return [str(ENTRYPOINT), f"--defaults-file={config}", f"--datadir={node / 'data'}",
                f"--socket={self.socket(ordinal)}", f"--pid-file={node / 'run' / 'mysqld.pid'}",
                f"--tmpdir={node / 'tmp'}"]  # each pod its own, as a container has

    def launch(self, ordinal: int, command: list[str]) -> None:
        from player.proc import Proc

        node = self.nodes[ordinal]
        env = {**os.environ, "MARIADB_INIT_SQL": str(self.node_dir(ordinal) / "init.sql"),
               "PATH": os.environ.get("PATH", "") + ":/usr/sbin:/sbin"}
        node.proc = Proc(command, self.node_dir(ordinal) / self.log_name, env=env)
        node.proc.start()

    def pod_command(self, ordinal: int, *, config_dir: Path, bootstrap_expect: int) -> list[str]:
        self.prepare_dirs(ordinal)
        return self.store_command(ordinal, config_dir / "galera.cnf")

    def cluster_address(self, ordinals: list[int]) -> str:
        return "gcomm://" + ",".join(f"{self.ip(o)}:4567" for o in ordinals)

    def _start_node(self, ordinal: int, members: list[int], *, new_cluster: bool) -> None:
        self._node(ordinal)
        self.prepare_dirs(ordinal)
        config = self.node_dir(ordinal) / "galera.cnf"
        config.write_text(render_config(self.ip(ordinal), f"galera-{ordinal}",
                                        self.cluster_address(members), new_cluster=new_cluster))
        self.launch(ordinal, self.store_command(ordinal, config))

    def start(self, count: int) -> None:
        members = list(range(count))
        self._start_node(0, members, new_cluster=True)
        self.wait_synced(0, size=1)
        for ordinal in members[1:]:
            self._start_node(ordinal, members, new_cluster=False)
        for ordinal in members:
            self.wait_synced(ordinal, size=count)

    def add(self, ordinal: int) -> None:
        members = sorted({*self.nodes, ordinal})
        self._start_node(ordinal, members, new_cluster=False)

    def status(self, ordinal: int) -> dict[str, str]:
        """SHOW GLOBAL STATUS LIKE 'wsrep_%' through the node's socket, as root; {} when
        the client cannot read it (the node down, its socket not there yet)."""
        answer = subprocess.run(
            ["mariadb", f"--socket={self.socket(ordinal)}", "-uroot", "-N", "-B", "-e",
             WSREP_STATUS],
            capture_output=True, text=True, timeout=10)
        if answer.returncode != 0:
            return {}
        return dict(line.split("\t", 1) for line in answer.stdout.splitlines() if "\t" in line)

    @contextmanager
    def status_session(self, ordinal: int) -> Iterator[Callable[[], dict[str, str]]]:
        """A reader of the node's wsrep status over one connection held open (the kv user,
        over TCP): samples that say what the node's component is, where a new connection
        per sample also tests its handshake, which mariadbd aborts now and then while it
        processes a configuration change (ERROR 2013 at 'reading initial communication
        packet'). A held connection the server breaks raises."""
        connection = kv_connection(self.ip(ordinal))

        def read() -> dict[str, str]:
            with connection.cursor() as cursor:
                cursor.execute(WSREP_STATUS)
                return {str(name): str(value) for name, value in cursor.fetchall()}

        try:
            yield read
        finally:
            connection.close()

    def synced(self, ordinal: int, size: int | None = None) -> bool:
        status = self.status(ordinal)
        return (status.get("wsrep_cluster_status") == "Primary"
                and status.get("wsrep_local_state") == "4"
                and (size is None or status.get("wsrep_cluster_size") == str(size)))

    def wait_synced(self, ordinal: int, *, size: int | None = None,
                    timeout: float = 90.0) -> None:
        wait_until(lambda: self.synced(ordinal, size),
                   what=f"galera-{ordinal} Synced in a Primary component"
                        + (f" of {size}" if size else ""), timeout=timeout)

    def leader(self) -> int | None:
        """Galera has no leader: the first Synced node of a Primary component."""
        return next((o for o, n in sorted(self.nodes.items())
                     if n.running and self.synced(o)), None)


class GaleraHarness(Harness[GaleraCluster]):
    store = "galera"
    kv_class = GaleraKv
    templates = TEMPLATES

    def make_cluster(self, workdir: Path) -> GaleraCluster:
        return GaleraCluster(workdir)

    def remove_through_store(self, ordinal: int) -> None:
        """A Galera member leaves by stopping cleanly."""
        self.stop_store(ordinal)

    def write_one_bulk(self, client: httpx.Client, url: str, index: int, value: str) -> None:
        self.kv.put(url, f"bulk/{index}", value)

    def sidecar_credentials(self) -> dict[str, str]:
        password = self.workdir / "status-password"
        password.parent.mkdir(parents=True, exist_ok=True)
        if not password.exists():
            # Written once, whole: pods start at once, and a rewrite (truncated, then
            # written) let a concurrent init read an empty password and be denied.
            write_atomically(password.parent, password.name, STATUS_PASSWORD.encode(),
                             mode=0o644)
        return {"AGENT_STORE_USERNAME": STATUS_USER,
                "AGENT_STORE_PASSWORD_FILE": str(password)}

    def init_env(self, ordinal: int) -> dict[str, str]:
        return {**self.sidecar_credentials(), "AGENT_VAR_SST_METHOD": TEST_VARS["sst_method"],
                "AGENT_GALERA_RECOVER_COMMAND": "mariadbd --no-defaults --user=mysql "
                                                "--wsrep-provider=/usr/lib/galera/libgalera_smm.so",
                "PATH": os.environ.get("PATH", "") + ":/usr/sbin:/sbin"}

    def pod_env(self, ordinal: int, *, config_dir: Path, dns_server: str) -> dict[str, str]:
        """The example's sidecar mounts init's output (it drops the seed's flag there)."""
        return {"AGENT_OUTPUT_DIR": str(config_dir)}

    def start_sidecar(self, ordinal: int, **kwargs: Any) -> Any:
        env = {**self.sidecar_credentials(), "POD_IP": self.ip(ordinal),
               **(kwargs.pop("env", None) or {})}
        return super().start_sidecar(ordinal, env=env, **kwargs)


HARNESS = GaleraHarness
