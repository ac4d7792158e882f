"""What users copy: the k8s/ examples render with kustomize, validate against the
Kubernetes OpenAPI schemas, pass the security scanner; the Dockerfile lints clean; the
wheel installs into a clean virtualenv and its entrypoint runs as the image runs it."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from agent.registry import STORES, raft_stores
from player.manifests import kustomize_binary
from player.stores.galera import TEMPLATES as GALERA_TEMPLATES
from player.stores.galera import render_config
from tests.conftest import required
from tests.static.tools import assert_scanned_clean, need

ROOT = Path(__file__).resolve().parents[2]
# Every kustomization users can build (components are only parts of one).
EXAMPLES = sorted(p.parent.relative_to(ROOT).as_posix()
                  for p in (ROOT / "k8s").rglob("kustomization.yaml")
                  if "kind: Component" not in p.read_text(encoding="utf-8"))
KUBERNETES = kubernetes_validate.latest_version()


def render(example: str) -> str:
    binary = required(kustomize_binary)
    return subprocess.run([binary, "build", str(ROOT / example)], check=True,
                          capture_output=True, text=True).stdout


def test_every_example_is_checked() -> None:
    assert {"k8s/base", "k8s/etcd", "k8s/rqlite", "k8s/consul", "k8s/native-sidecar/etcd",
            "k8s/native-sidecar/rqlite", "k8s/native-sidecar/consul",
            "k8s/native-sidecar/galera"} <= set(EXAMPLES)


@pytest.mark.parametrize("store", [*raft_stores(), "galera"])
def test_native_sidecar_overlay(store: str) -> None:
    """The agent moves to the init containers with restartPolicy Always, drops its own
    preStop (it would run after the store has gone) and is told so; the store's hook
    still points at the agent."""
    documents = [d for d in yaml.safe_load_all(render(f"k8s/native-sidecar/{store}")) if d]
    statefulset = next(d for d in documents if d["kind"] == "StatefulSet")
    pod = statefulset["spec"]["template"]["spec"]
    init, agent = pod["initContainers"]
    assert init["name"] == "init" and "restartPolicy" not in init
    assert agent["name"] == "agent" and agent["restartPolicy"] == "Always"
    assert "lifecycle" not in agent
    assert {"name": "AGENT_NATIVE_SIDECAR", "value": "true"} in agent["env"]
    assert [c["name"] for c in pod["containers"]] == [store]
    hook = pod["containers"][0]["lifecycle"]["preStop"]["httpGet"]
    assert (hook["path"], hook["port"]) == ("/leave/wait", 9090)


@pytest.mark.parametrize("example", [e for e in EXAMPLES if e != "k8s/base"])
def test_the_agent_port_is_open_to_scrapers_and_peers_only(example: str) -> None:
    """GET /leave/wait may start a leave: no rule opens port 9090 to every pod. A store
    with pre-start work opens it to its own pods too (init asks its peers' GET /init)."""
    documents = [d for d in yaml.safe_load_all(render(example)) if d]
    policy = next(d for d in documents if d["kind"] == "NetworkPolicy")
    statefulset = next(d for d in documents if d["kind"] == "StatefulSet")
    own = statefulset["spec"]["selector"]["matchLabels"]
    pod = statefulset["spec"]["template"]["spec"]
    store = next(e["value"] for c in [*pod.get("initContainers", []), *pod["containers"]]
                 for e in c.get("env", []) if e["name"] == "AGENT_BACKEND")
    open_ports = [p["port"] for rule in policy["spec"]["ingress"] if "from" not in rule
                  for p in rule["ports"]]
    assert 9090 not in open_ports
    rules = [rule for rule in policy["spec"]["ingress"]
             if {"port": 9090, "protocol": "TCP"} in rule["ports"]]
    assert len(rules) == 1
    sources = [source["podSelector"]["matchLabels"] for source in rules[0]["from"]]
    expected = [{"sts-agent.io/scrape": "true"}]
    if STORES[store].prestart:
        expected.append(own)
        assert "namespaceSelector" not in rules[0]["from"][1]  # this namespace's pods
    assert sources == expected


@pytest.mark.parametrize("example", ["k8s/galera", "k8s/native-sidecar/galera"])
def test_the_galera_full_copy_method_keeps_the_donor_serving_and_its_account_exists(
        example: str) -> None:
    """galera.cnf copies with mariabackup (its donor keeps committing, so the agent, which
    reads the method from mariadbd, keeps it ready), and the account the method logs in
    as is one users.sql creates, by the socket (no password in the config)."""
    documents = [d for d in yaml.safe_load_all(render(example)) if d]
    maps = {d["metadata"]["name"]: d for d in documents if d["kind"] in ("ConfigMap", "Secret")}
    template = next(m["data"]["galera.cnf.j2"] for m in maps.values()
                    if "galera.cnf.j2" in m.get("data", {}))
    assert template == (GALERA_TEMPLATES / "galera.cnf.j2").read_text(encoding="utf-8")
    rendered = render_config("10.0.0.1", "galera-0", "gcomm://", new_cluster=False,
                             template_vars={})  # the template's own defaults, as shipped
    settings = dict(line.split(" = ", 1) for line in rendered.splitlines()
                    if line.startswith("wsrep_sst_"))
    assert settings["wsrep_sst_method"] == "mariabackup"
    user, password = settings["wsrep_sst_auth"].split(":")
    assert (user, password) == ("mysql", "")
    users = (ROOT / "k8s" / "galera" / "auth" / "users.sql").read_text(encoding="utf-8")
    assert f"CREATE USER IF NOT EXISTS '{user}'@'localhost' IDENTIFIED VIA unix_socket;" in users
    assert f"GRANT RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR ON *.* TO '{user}'@'localhost';" \
        in users


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_renders_and_validates_strictly(example: str) -> None:
    documents = [d for d in yaml.safe_load_all(render(example)) if d]
    assert documents
    for document in documents:
        # strict: unknown fields are errors, as `kubectl apply --validate=strict` has them
        kubernetes_validate.validate(document, KUBERNETES, strict=True)


@pytest.mark.parametrize("example", [e for e in EXAMPLES if e != "k8s/base"])
def test_example_passes_the_security_scanner(example: str, tmp_path: Path) -> None:
    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(render(example))
    assert_scanned_clean(manifest)


def test_dockerfile_and_containerfiles_lint_clean() -> None:
    hadolint = need("hadolint")
    dockerfiles = [ROOT / "Dockerfile", *sorted((ROOT / "images").glob("*/Containerfile"))]
    result = subprocess.run([hadolint, *map(str, dockerfiles)], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_wheel_installs_and_runs_as_the_image_does(tmp_path: Path) -> None:
    """Build the wheel, install it alone into a clean virtualenv (pinned dependencies,
    no bytecode written at run time, as with the image's read-only root), and run the
    entrypoint by name from PATH, as ENTRYPOINT ["sts-agent"] does."""
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w",
                    str(wheels), str(ROOT)], check=True, capture_output=True)
    (wheel,) = wheels.glob("sts_agent-*.whl")
    target = tmp_path / "image"
    venv.create(target, with_pip=True)
    subprocess.run([str(target / "bin" / "python"), "-m", "pip", "install", "--quiet",
                    "-c", str(ROOT / "constraints.txt"), str(wheel)], check=True,
                   capture_output=True)
    env = {"PATH": f"{target / 'bin'}:/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1",
           "HOME": str(tmp_path)}
    shown = subprocess.run(["sts-agent", "--help"], env=env, capture_output=True, text=True,
                           cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    for command in ("init", "run", "leave"):
        assert command in shown.stdout
    # The kubectl plugin the package installs beside it (`kubectl sts-agent status`).
    plugin = subprocess.run(["kubectl-sts_agent", "status", "--help"], env=env,
                            capture_output=True, text=True, cwd=tmp_path)
    assert plugin.returncode == 0 and "statefulset" in plugin.stdout, plugin.stderr
    out = tmp_path / "out"
    rendered = subprocess.run(
        ["sts-agent", "render", "--templates-dir", str(ROOT / "examples/consul/template"),
         "--output-dir", str(out), "--service", "consul", "--bootstrap-expect", "3"],
        env={**env, "POD_NAME": "consul-1", "POD_NAMESPACE": "prod", "POD_IP": "10.0.0.11",
             "AGENT_CLUSTER_DOMAIN": "cluster.local"},
        capture_output=True, text=True, cwd=tmp_path)
    assert rendered.returncode == 0, rendered.stderr
    assert "consul-0.consul.prod.svc.cluster.local" in "".join(
        p.read_text() for p in out.iterdir())
    bad = subprocess.run(["sts-agent", "run", "--poll-interval-seconds", "-1"], env=env,
                         capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode == 2, bad.stderr
