"""Every image the examples name, run as the examples run it (their users, read-only
roots, no capabilities, fsGroup-owned volumes), by containerd."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.stores.galera.options import GaleraOptions
from agent.stores.galera.prestart import RECOVERY_LOG, recover_command
from player import manifests
from player.runtime import Container, Containerd, archive, full_name, image_config
from player.wait import wait_until
from tests.images.conftest import ROOT, Pod

EXAMPLES = sorted(p.parent for p in (ROOT / "k8s").rglob("kustomization.yaml")
                  if (p.parent / "statefulset.yaml").exists() or p.parent.parent.name
                  == "native-sidecar")
# How long a store takes to answer its first request when it starts alone on a fresh
# volume, on a loaded two-core host (etcd and rqlite in about a second, Consul a few,
# MariaDB's first start initialises its system tables first).
STORE_START_SECONDS = 60.0


def named_images() -> set[str]:
    """Every container image the k8s/ examples (and their overlays) name."""
    names = set()
    for example in EXAMPLES:
        for obj in manifests.build(example):
            if obj["kind"] != "StatefulSet":
                continue
            pod = obj["spec"]["template"]["spec"]
            for container in [*pod.get("initContainers", []), *pod["containers"]]:
                names.add(container["image"])
    return names


def test_every_image_the_examples_name_is_built() -> None:
    named = named_images()
    assert len(named) >= 7, named
    missing = sorted(full_name(n) for n in named if not archive(n).is_file())
    assert not missing, f"named in k8s/ but not built by make images: {missing}"


@pytest.mark.parametrize("image", ["gcr.io/distroless/python3-debian12:nonroot",
                                   "sts-agent:0.1.0"])
def test_the_distroless_image_has_no_shell_and_no_package_manager(
        containerd: Containerd, tmp_path: Path, image: str) -> None:
    name = containerd.ensure_image(image)
    root = tmp_path / "root"
    root.mkdir()
    containerd.ctr("images", "mount", name, str(root))
    try:
        present = [p for p in ("bin/sh", "usr/bin/sh", "bin/bash", "bin/dash", "usr/bin/dpkg",
                               "usr/bin/apt", "usr/bin/apt-get", "bin/busybox")
                   if (root / p).exists() or (root / p).is_symlink()]
        assert present == [], f"{image} has {present}"
        assert (root / "usr/bin/python3").exists()
        assert "BEGIN CERTIFICATE" in (root / "etc/ssl/certs/ca-certificates.crt").read_text()
        assert "nonroot:x:65532:65532:" in (root / "etc/passwd").read_text()
    finally:
        containerd.ctr("images", "unmount", "--rm", str(root), check=False)
    assert image_config(image).get("User") == "65532:65532"


@pytest.mark.parametrize(("example", "container"), [
    ("etcd", "init"), ("etcd", "agent"), ("galera", "init"), ("exec-galera", "init")])
def test_the_agent_starts_in_its_image_as_the_example_runs_it(
        containerd: Containerd, pod: Callable[..., Pod], example: str, container: str) -> None:
    spec = pod(example).container(container, args=["--version"])
    code, output = containerd.run(spec)
    assert code == 0, output
    assert output.strip() == "sts-agent 0.1.0"


@pytest.mark.parametrize("version", ["v3.4.23", "v3.5.35", "v3.6.16"])
def test_every_etcd_image_runs_its_etcd_as_the_example_runs_it(
        containerd: Containerd, pod: Callable[..., Pod], version: str) -> None:
    """The example's etcd container with each version's image (the tests' version matrix):
    Debian's 3.4 is linked against glibc, the 3.5 and 3.6 builds are static."""
    container = pod("etcd").container("etcd", command=["etcd", "--version"])
    container = dataclasses.replace(container,
                                    image=f"gcr.io/etcd-development/etcd:{version}")
    code, output = containerd.run(container)
    assert code == 0, output
    assert f"etcd Version: {version.lstrip('v')}" in output


def wait_http(url: str, what: str, process: subprocess.Popen[bytes], log: Path,
              accept: Callable[[httpx.Response], bool] | None = None) -> httpx.Response:
    """GET ``url`` until it answers (and ``accept`` takes it); the container's log in
    the failure when it exits first."""
    def answered() -> httpx.Response | None:
        if process.poll() is not None:
            raise AssertionError(f"{what}: the container exited {process.returncode}:\n"
                                 f"{log.read_text(errors='replace')[-3000:]}")
        response = httpx.get(url, timeout=2.0)
        return response if accept is None or accept(response) else None
    return wait_until(answered, what=what, timeout=STORE_START_SECONDS)


# The init container of a one-member cluster: it bootstraps alone.
ALONE = {"AGENT_BOOTSTRAP_EXPECT": "1"}


def init_then_start(containerd: Containerd, example: Pod, store: str,
                    env: dict[str, str] | None = None
                    ) -> tuple[subprocess.Popen[bytes], Path, Container]:
    """The example's init container decides and renders this pod's config, then its store
    container starts with the example's command and flags."""
    init = example.container("init", env={**ALONE, **(env or {})})
    code, output = containerd.run(init)
    assert code == 0, output
    container = example.container(store)
    log = example.workdir / f"{store}.log"
    return containerd.start(container, log), log, container


def owner(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_uid, stat.st_gid


def test_etcd_and_its_sidecar_start_as_the_example_runs_them(
        containerd: Containerd, pod: Callable[..., Pod]) -> None:
    """init decides and renders, etcd starts with the example's flags, and the sidecar
    (`run`) finds it a ready voter: the three containers of the pod, each as the example
    runs it."""
    etcd = pod("etcd")
    process, log, container = init_then_start(containerd, etcd, "etcd")
    sidecar = etcd.container("agent")
    sidecar_log = etcd.workdir / "agent.log"
    sidecar_process = containerd.start(sidecar, sidecar_log)
    try:
        wait_http(f"http://{etcd.ip}:2379/health", "etcd's /health true", process, log,
                  lambda r: r.status_code == 200 and r.json().get("health") == "true")
        wait_http(f"http://{etcd.ip}:9090/readyz", "the sidecar's /readyz 200",
                  sidecar_process, sidecar_log, lambda r: r.status_code == 200)
    finally:
        containerd.stop(sidecar, sidecar_process)
        containerd.stop(container, process)
    assert owner(etcd.volumes["data"] / "data") == (65532, 65532)


def test_consul_starts_as_the_example_runs_it(
        containerd: Containerd, pod: Callable[..., Pod]) -> None:
    consul = pod("consul")
    process, log, container = init_then_start(containerd, consul, "consul")
    try:
        wait_http(f"http://{consul.ip}:8500/v1/status/leader", "a Consul leader", process,
                  log, lambda r: r.status_code == 200 and r.json() != "")
    finally:
        containerd.stop(container, process)
    assert owner(consul.volumes["data"] / "raft") == (65532, 65532)


def test_rqlite_starts_as_the_example_runs_it(
        containerd: Containerd, pod: Callable[..., Pod]) -> None:
    """The example's flags (three expected, its peers' names): alone, rqlited serves its
    HTTP API and waits for them."""
    rqlite = pod("rqlite")
    process, log, container = init_then_start(containerd, rqlite, "rqlite")
    try:
        wait_http(f"http://{rqlite.ip}:4001/readyz?noleader", "rqlited answering", process,
                  log, lambda r: r.status_code in (200, 401))
    finally:
        containerd.stop(container, process)
    assert owner(rqlite.volumes["data"] / "data") == (65532, 65532)


def events(output: str, name: str) -> list[dict[str, Any]]:
    """The agent's log events called ``name`` in a container's output."""
    found = []
    for line in output.splitlines():
        if line.startswith("{") and f'"event": "{name}"' in line:
            found.append(json.loads(line))
    return found


# The galera.cnf a Galera pod's init renders needs its vote, and the vote needs the
# StatefulSet from the API: a lone node here runs without wsrep (the kubelet tier runs the
# whole example). What mariadbd reads of it for the paths in the image:
LONE_CNF = ("[mysqld]\ndatadir=/var/lib/mysql\nsocket=/run/mysqld/mysqld.sock\n"
            "pid-file=/run/mysqld/mysqld.pid\ntmpdir=/var/tmp\nbind-address=0.0.0.0\n")


def test_mariadb_initialises_as_mysql_and_the_galera_init_image_recovers_a_crash(
        containerd: Containerd, pod: Callable[..., Pod]) -> None:
    """MariaDB's image initialises the volume as mysql (999): the root password from its
    file, users.sql from /docker-entrypoint-initdb.d; after a SIGKILL the init image runs
    the agent's `mariadbd --wsrep-recover` on it as 999, on its read-only root."""
    galera = pod("galera")
    (galera.volumes["config"] / "galera.cnf").write_text(LONE_CNF)
    container = galera.container("galera", args=[
        "mariadbd", "--defaults-extra-file=/config/galera.cnf", "--wsrep-on=OFF"])
    log = galera.workdir / "galera.log"
    process = containerd.start(container, log)
    root_password = (galera.volumes["auth"] / "root-password").read_text().strip()
    status_password = (galera.volumes["auth"] / "status-password").read_text().strip()

    def answers() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"mariadb exited {process.returncode}:\n"
                                 f"{log.read_text(errors='replace')[-3000:]}")
        return subprocess.run(
            ["mariadb", "-h", galera.ip, "-u", "sts-agent", f"-p{status_password}",
             "-e", "SELECT 1"], capture_output=True, check=False, timeout=10).returncode == 0

    try:
        wait_until(answers, what="the status user of users.sql logging in",
                   timeout=STORE_START_SECONDS)
        write = containerd.ctr("tasks", "exec", "--exec-id", "write", container.name,
                               "mariadb", "-uroot", f"-p{root_password}", "-e",
                               "CREATE DATABASE kept", check=False)
        assert write.returncode == 0, write.stderr
    finally:
        containerd.stop(container, process, first="SIGKILL")  # a crash
    assert owner(galera.volumes["data"] / "ibdata1") == (999, 999)
    # The agent's own recovery command line, with the example's recover command.
    init = galera.container("init")
    command = recover_command(GaleraOptions().galera_recover_command, Path("/var/lib/mysql"))
    recover = galera.container("init", command=command, args=[])
    assert "/var/lib/mysql" in init.mounts
    code, output = containerd.run(recover)
    recovery = (galera.volumes["data"] / RECOVERY_LOG).read_text()
    assert code == 0, output + recovery
    assert "WSREP: Recovered position:" in recovery, recovery


def test_exec_galera_runs_its_hooks_under_tini(
        containerd: Containerd, pod: Callable[..., Pod]) -> None:
    """The exec-galera image's entrypoint is tini, and a hook run under it as the example
    runs the container says what it finds: no mariadbd ran, stopped (7)."""
    node = pod("exec-galera")
    (node.volumes["config"] / "galera.cnf").write_text(LONE_CNF)
    assert image_config(node.container("galera").image)["Entrypoint"][:2] == ["tini", "--"]
    check = node.container("galera", command=["tini", "--", "/hooks/check.sh"], args=[],
                           env={"GALERA_CNF": "/config/galera.cnf"})
    code, output = containerd.run(check)
    assert code == 7, output
    assert "mariadbd is not running" in output
