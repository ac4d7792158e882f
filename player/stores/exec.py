"""The exec store for the tests and the player: the exec-galera example's hooks on real MariaDB."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from player.peers import ROOT, agent_binary, installed_binary, mariadbd_binary
from player.stores.base import HooksHarness, HookStartedCluster, Image, exec_pod_env
from player.stores.galera import (
    INIT_SQL,
    GaleraCluster,
    GaleraKv,
    allow_mysql_through,
)

EXAMPLE = ROOT / "k8s" / "exec-galera"
TEMPLATES = EXAMPLE / "templates"
HOOKS = EXAMPLE / "hooks"


def hooks_json(hooks_dir: Path = HOOKS, *, timeouts: dict[str, str] | None = None) -> str:
    """AGENT_EXEC_HOOKS as the example's ConfigMap gives it, the scripts in ``hooks_dir``."""
    timeouts = {"sequence": "150s", "seed": "120s", "primary": "300s", "status": "20s",
                "stop": "60s", **(timeouts or {})}
    scripts = {"sequence": "sequence.sh", "seed": "seed.sh", "primary": "start.sh",
               "status": "check.sh", "stop": "stop.sh"}
    return json.dumps({name: {"command": [str(hooks_dir / script)], "timeout": timeouts[name]}
                       for name, script in scripts.items()})


def tini_binary(tag: str = "") -> str:
    return installed_binary("tini", "tini")


# The Dockerfile's exec-galera target: tini as PID 1, the agent, Debian's MariaDB.
IMAGES = {"sts-agent-exec-galera": Image(("tini", "--", "sts-agent"), {
    "tini": tini_binary, "sts-agent": agent_binary, "mariadbd": mariadbd_binary})}


class ExecGaleraKv(GaleraKv):
    """Galera's client: an exec pod's "client port" is its agent, MySQL's is 3306."""

    @staticmethod
    def client_url(ip: str, store: str) -> str:
        return f"mysql://{ip}:3306"


@dataclass
class ExecGaleraCluster(HookStartedCluster, GaleraCluster):
    """mariadbd nodes ``exec-<i>`` on ``127.0.61.<i+1>``, started by the agent's hooks."""

    subnet: int = 61
    prefix = "exec"
    pid_file = "mysqld.pid"


class ExecHarness(HooksHarness[ExecGaleraCluster]):
    """Pods whose sidecar starts mariadbd through the example's hooks."""

    store = "exec"
    kv_class = ExecGaleraKv
    templates = TEMPLATES

    def make_cluster(self, workdir: Path) -> ExecGaleraCluster:
        return ExecGaleraCluster(workdir)

    def hooks_env(self, ordinal: int, config_dir: Path) -> dict[str, str]:
        """What the hooks read: the rendered config, the new cluster's SQL, mariadbd's PATH."""
        cluster = self.cluster
        cluster.prepare_dirs(ordinal)
        config_dir.mkdir(parents=True, exist_ok=True)
        allow_mysql_through(config_dir)
        return {"AGENT_EXEC_HOOKS": hooks_json(),
                "GALERA_CNF": str(config_dir / "galera.cnf"),
                "GALERA_INIT_SQL": str(cluster.node_dir(ordinal) / "init.sql"),
                "PATH": os.environ.get("PATH", "") + ":/usr/sbin:/sbin"}

    def init_env(self, ordinal: int) -> dict[str, str]:
        node = self.cluster.node_dir(ordinal)
        (node / "init.sql").parent.mkdir(parents=True, exist_ok=True)
        (node / "init.sql").write_text(INIT_SQL)
        return {"AGENT_VAR_DATA_DIR": str(node / "data"), "AGENT_VAR_RUN_DIR": str(node / "run"),
                "AGENT_VAR_TMP_DIR": str(node / "tmp"), "AGENT_VAR_ADVERTISE": "ip",
                "AGENT_VAR_BUFFER_POOL": "32M", "AGENT_VAR_GCACHE_SIZE": "16M",
                "AGENT_DATA_DIR": str(node / "data")}

    def pod_env(self, ordinal: int, *, config_dir: Path, dns_server: str) -> dict[str, str]:
        return {**self.hooks_env(ordinal, config_dir), **exec_pod_env(
            self.ip(ordinal), config_dir=config_dir, dns_server=dns_server)}


HARNESS = ExecHarness
