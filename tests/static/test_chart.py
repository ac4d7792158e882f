"""The Helm chart: lints strictly, renders objects that validate and pass the security
scanner for every store, refuses a bad value naming it, and renders what the k8s/ examples
hold where it matters (the pod template, RBAC, the PDB, Services, NetworkPolicy, config)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from agent.config.loading import env_name, fields, values_name
from agent.registry import STORES as REGISTRY
from player.manifests import CHART, build, helm_binary, helm_template
from player.peers import cached_binary
from tests.conftest import required
from tests.static.tools import ROOT, assert_scanned_clean

SCHEMA = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
STORES: list[str] = SCHEMA["properties"]["store"]["enum"]
KUBERNETES = kubernetes_validate.latest_version()
# rqlite's example holds placeholder passwords; the chart is given the same ones.
ALERTS = Path(__file__).parent / "alerts"
RUNBOOKS = ROOT / "docs" / "runbooks.md"
# The k8s/ example each store's defaults render (exec's: MariaDB Galera by hooks), and the
# release named as the example is.
EXAMPLE = {"exec": "exec-galera"}
RQLITE_AUTH = {"rqlite.auth.adminPassword": "replace-me-admin",
               "rqlite.auth.agentPassword": "replace-me-agent",
               "rqlite.auth.clusterPassword": "replace-me-cluster"}


@pytest.fixture(scope="module")
def helm() -> str:
    return required(helm_binary)


def rendered(store: str, **values: Any) -> list[dict[str, Any]]:
    given: dict[str, Any] = {"store": store, **(RQLITE_AUTH if store == "rqlite" else {}),
                             **values}
    release = EXAMPLE.get(store, store)
    return helm_template(release, release, given, kube_version=f"v{KUBERNETES}")


def one(documents: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [d for d in documents if d["kind"] == kind]
    return found


def test_every_store_has_the_chart() -> None:
    assert sorted(STORES) == sorted(REGISTRY)


@pytest.mark.parametrize("store", STORES)
def test_chart_lints_strictly(store: str, helm: str) -> None:
    result = subprocess.run([helm, "lint", "--strict", str(CHART), "--set", f"store={store}"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout, result.stdout


@pytest.mark.parametrize("store", STORES)
def test_chart_renders_and_validates_strictly(store: str, helm: str) -> None:
    documents = rendered(store)
    assert {d["kind"] for d in documents} >= {"StatefulSet", "Service", "ServiceAccount",
                                             "Role", "RoleBinding", "PodDisruptionBudget",
                                             "NetworkPolicy"}
    for document in documents:
        kubernetes_validate.validate(document, KUBERNETES, strict=True)


@pytest.mark.parametrize("store", STORES)
def test_chart_passes_the_security_scanner(store: str, helm: str, tmp_path: Path) -> None:
    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(yaml.safe_dump_all(rendered(store)))
    assert_scanned_clean(manifest)


def strings(value: Any, rename: dict[str, str]) -> Any:
    """``value`` with every string that is a key of ``rename`` replaced by its value."""
    if isinstance(value, dict):
        return {k: strings(v, rename) for k, v in value.items()}
    if isinstance(value, list):
        return [strings(v, rename) for v in value]
    if isinstance(value, str):
        return rename.get(value, value)
    return value


def env_compared(env: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A container's env as it means: a JSON value parsed (AGENT_EXEC_HOOKS), and sorted
    by name unless a value refers to another ($(VAR) reads only the ones before it)."""
    values = [str(item.get("value", "")) for item in env]
    parsed = [{**item, "value": json.loads(value)} if value.startswith("{") else item
              for item, value in zip(env, values, strict=True)]
    if any("$(" in value for value in values):
        return parsed
    return sorted(parsed, key=lambda item: str(item["name"]))


def unordered(pod: dict[str, Any]) -> dict[str, Any]:
    """``pod`` with the lists whose order means nothing sorted: volumes, each container's
    mounts and its env (see env_compared)."""
    pod = json.loads(json.dumps(pod))
    pod["volumes"] = sorted(pod.get("volumes", []), key=lambda v: str(v["name"]))
    for container in [*pod.get("initContainers", []), *pod.get("containers", [])]:
        container["volumeMounts"] = sorted(container.get("volumeMounts", []),
                                           key=lambda m: (str(m["name"]), str(m["mountPath"])))
        if "env" in container:
            container["env"] = env_compared(container["env"])
    return pod


def compared(document: dict[str, Any]) -> dict[str, Any]:
    """What of an object must not drift: all but its labels and annotations (the chart's
    carry Helm's own; the scanner's skips name what differs), and for a StatefulSet all
    but its pod template's labels, which must still carry the selector."""
    kept = {k: v for k, v in document.items() if k != "metadata"}
    kept["name"] = document["metadata"]["name"]
    if document["kind"] == "StatefulSet":
        spec = dict(kept["spec"])
        labels = spec["template"]["metadata"]["labels"]
        assert spec["selector"]["matchLabels"].items() <= labels.items()
        spec["template"] = {"spec": unordered(spec["template"]["spec"])}
        kept["spec"] = spec
    if document["kind"] == "Secret":  # the example's from files, the chart's from values
        data = {**document.get("data", {}), **document.get("stringData", {})}
        kept = {"kind": "Secret", "name": kept["name"], "keys": sorted(data)}
    return kept


def by_kind(documents: list[dict[str, Any]]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    for kind in sorted({d["kind"] for d in documents}):
        yield kind, sorted((d for d in documents if d["kind"] == kind),
                           key=lambda d: str(d["metadata"]["name"]))


@pytest.mark.parametrize("store", STORES)
def test_chart_and_example_do_not_drift(store: str, helm: str) -> None:
    """The chart's release named for the store renders the k8s/ example's objects: names
    may differ where the chart prefixes the release's (its RBAC) or kustomize suffixes a
    content hash (its ConfigMaps and Secrets); the rest is compared whole."""
    example = [d for d in build(ROOT / "k8s" / EXAMPLE.get(store, store))
               if d["kind"] != "Namespace"]
    chart = rendered(store)
    ours, theirs = dict(by_kind(chart)), dict(by_kind(example))
    assert sorted(ours) == sorted(theirs)
    rename: dict[str, str] = {}
    for kind, objects in ours.items():
        assert len(objects) == len(theirs[kind]), kind
        for mine, its in zip(objects, theirs[kind], strict=True):
            rename[mine["metadata"]["name"]] = its["metadata"]["name"]
    for kind, objects in ours.items():
        for mine, its in zip(objects, theirs[kind], strict=True):
            assert compared(strings(mine, rename)) == compared(its), (kind, its["metadata"])


@pytest.mark.parametrize(("values", "named"), [
    ({"store": "mysql"}, "/store"),
    ({"replicaCount": -1}, "/replicaCount"),
    ({"replicaCount": "3"}, "/replicaCount"),
    ({"persistence": {"size": "lots"}}, "/persistence/size"),
    ({"agent": {"settings": {"leaveMargin": 3}}}, "leaveMargin"),
    ({"agent": {"settings": {"backend": "consul"}}}, "backend"),
    ({"replicas": 3}, "replicas"),
    ({"podDisruptionBudget": {"maxUnavailable": 0}}, "/podDisruptionBudget/maxUnavailable"),
    ({"galera.auth.statusPassword": "it's"}, "/galera/auth/statusPassword"),
    ({"exec.ports": [{"name": "x", "containerPort": 9090}]}, "/exec/ports/0/containerPort"),
    ({"exec.hooks": {"primary": {"command": ["/p"]}}}, "status"),
])
def test_a_bad_value_is_refused_with_its_path(values: dict[str, Any], named: str,
                                             helm: str) -> None:
    with pytest.raises(ValueError, match="values don't meet the specifications") as refused:
        helm_template("etcd", "etcd", values)
    assert named in str(refused.value)


def test_a_first_cluster_larger_than_its_pods_is_refused(helm: str) -> None:
    with pytest.raises(ValueError, match=r"replicaCount \(2\) is smaller than bootstrapExpect"):
        rendered("etcd", replicaCount=2)


@pytest.mark.parametrize("store", STORES)
def test_a_scale_changes_only_the_replicas(store: str, helm: str) -> None:
    """`helm upgrade --set replicaCount=N` must not roll the pods: the pod template
    (bootstrapExpect included) is the same at any size."""
    three, five = (one(rendered(store, replicaCount=n), "StatefulSet") for n in (3, 5))
    assert (three["spec"].pop("replicas"), five["spec"].pop("replicas")) == (3, 5)
    assert three == five


def test_agent_settings_reach_both_agent_containers_by_their_names(helm: str) -> None:
    names: list[str] = SCHEMA["properties"]["agent"]["properties"]["settings"][
        "propertyNames"]["enum"]
    settings = {name: f"v-{name}" for name in names}
    pod = one(rendered("etcd", **{"agent.settings": settings}), "StatefulSet")["spec"][
        "template"]["spec"]
    expected = {env_name(field): settings[values_name(field)] for field in fields()
                if values_name(field) in settings}
    assert len(expected) == len(names)
    for container in (pod["initContainers"][0], pod["containers"][1]):
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert {k: env.get(k) for k in expected} == expected, container["name"]
    assert "AGENT_LEAVE_MARGIN_SECONDS" not in {e["name"] for e in pod["containers"][0].get(
        "env", [])}


def test_rqlite_passwords_given_generated_or_your_own_secret(helm: str) -> None:
    secret = one(rendered("rqlite"), "Secret")["stringData"]
    users = {u["username"]: u for u in json.loads(secret["users.json"])}
    assert users["sts-agent"]["password"] == secret["agent-password"] == "replace-me-agent"
    assert users["sts-agent"]["perms"] == ["status", "ready", "remove", "leader-ops"]
    made = [one(helm_template("rqlite", "rqlite", {"store": "rqlite"}), "Secret")[
        "stringData"] for _ in range(2)]
    passwords = [{u["username"]: u["password"] for u in json.loads(m["users.json"])}
                 for m in made]
    assert all(len(p) == 24 for p in passwords[0].values())
    assert len(set(passwords[0].values())) == 3 and passwords[0] != passwords[1]
    assert all(m["agent-password"] == p["sts-agent"] for m, p in zip(made, passwords,
                                                                    strict=True))
    own = helm_template("rqlite", "rqlite", {"store": "rqlite",
                                             "rqlite.auth.existingSecret": "mine"})
    assert "Secret" not in {d["kind"] for d in own}
    volumes = one(own, "StatefulSet")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "auth", "secret": {"secretName": "mine", "defaultMode": 0o440}} in volumes


def monitored() -> list[dict[str, Any]]:
    return rendered("etcd", **{"metrics.prometheusRule.enabled": True,
                               "metrics.podMonitor.enabled": True})


def anchors(markdown: str) -> set[str]:
    """The anchors of a Markdown page's headings, as MkDocs and GitHub make them."""
    return {re.sub(r"[^a-z0-9]+", "-", heading.lower()).strip("-")
            for heading in re.findall(r"^#+ (.+)$", markdown, flags=re.M)}


def test_the_alerts_fire_as_their_tests_say(helm: str, tmp_path: Path) -> None:
    """promtool checks the rendered rules and runs tests/static/alerts/rules_test.yaml on
    them: each alert fires on its condition, after its `for`, with its labels and
    annotations, and not before; every alert is tested firing."""
    promtool = required(lambda: cached_binary("promtool", "PROMTOOL_VERSION"))
    rule = one(monitored(), "PrometheusRule")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule["spec"]))
    shutil.copy(ALERTS / "rules_test.yaml", tmp_path)
    checked = subprocess.run([promtool, "check", "rules", str(tmp_path / "rules.yaml")],
                             capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run([promtool, "test", "rules", str(tmp_path / "rules_test.yaml")],
                            capture_output=True, text=True)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    alerts = {r["alert"] for group in rule["spec"]["groups"] for r in group["rules"]}
    tests = yaml.safe_load((ALERTS / "rules_test.yaml").read_text())["tests"]
    firing = {case["alertname"] for test in tests for case in test["alert_rule_test"]
              if case.get("exp_alerts")}
    assert firing == alerts


def test_every_alert_has_its_runbook_section(helm: str) -> None:
    rule = one(monitored(), "PrometheusRule")
    sections = anchors(RUNBOOKS.read_text(encoding="utf-8"))
    for group in rule["spec"]["groups"]:
        for alert in group["rules"]:
            url = alert["annotations"]["runbook_url"]
            page, _, anchor = url.partition("#")
            assert page == "docs/runbooks.md" and anchor in sections, alert["alert"]


def test_the_pod_monitor_scrapes_the_agent_port(helm: str) -> None:
    documents = monitored()
    monitor = one(documents, "PodMonitor")
    pod = one(documents, "StatefulSet")["spec"]["template"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod["metadata"][
        "labels"].items()
    ports = {p["name"]: p["containerPort"] for c in pod["spec"]["containers"]
             for p in c.get("ports", [])}
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert (ports[endpoint["port"]], endpoint["path"]) == (9090, "/metrics")


def test_galera_passwords_reach_users_sql_and_the_agent(helm: str) -> None:
    documents = rendered("galera", **{"galera.auth.statusPassword": "s3cret",
                                      "galera.auth.rootPassword": "r00t"})
    secret = one(documents, "Secret")["stringData"]
    assert (secret["root-password"], secret["status-password"]) == ("r00t", "s3cret")
    assert "CREATE USER IF NOT EXISTS 'sts-agent'@'%' IDENTIFIED BY 's3cret';" in secret[
        "users.sql"]
    pod = one(documents, "StatefulSet")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == 999
    assert pod["initContainers"][0]["image"] == "sts-agent-galera:0.1.0"
    own = rendered("galera", **{"galera.auth.existingSecret": "mine"})
    assert "Secret" not in {d["kind"] for d in own}


def test_exec_runs_your_hooks_image_and_ports(helm: str) -> None:
    """store: exec with a store of your own: your image, hooks (AGENT_EXEC_HOOKS and the
    scripts), templates, ports and scratch directories."""
    hooks = {"primary": {"command": ["/hooks/start.sh"], "timeout": "30s"},
             "status": {"command": ["/hooks/status.sh"]}}
    documents = rendered("exec", **{
        "exec.image": {"repository": "mine/store", "tag": "7", "pullPolicy": "IfNotPresent"},
        "exec.containerName": "store", "exec.dataDir": "/data", "exec.hooks": hooks,
        "exec.hookFiles": {"start.sh": "#!/bin/sh\nexec store\n", "status.sh": "exit 8\n"},
        "exec.templateFiles": {"store.conf.j2": "name = {{ pod_name }}\n"},
        "exec.env": [], "exec.scratch": [{"name": "run", "mountPath": "/run/store"}],
        "exec.ports": [{"name": "client", "containerPort": 7000, "client": True},
                       {"name": "peer", "containerPort": 7001, "peer": True}]})
    for document in documents:
        kubernetes_validate.validate(document, KUBERNETES, strict=True)
    pod = one(documents, "StatefulSet")["spec"]["template"]["spec"]
    (init,), (store,) = pod["initContainers"], pod["containers"]
    assert (store["name"], store["image"], store["imagePullPolicy"], store["args"]) == (
        "store", "mine/store:7", "IfNotPresent", ["run"])
    assert init["image"] == "mine/store:7" and init["env"] == store["env"]
    env = {e["name"]: e.get("value") for e in store["env"]}
    assert json.loads(env["AGENT_EXEC_HOOKS"]) == hooks and env["AGENT_BACKEND"] == "exec"
    assert [p["containerPort"] for p in store["ports"]] == [9090, 7000, 7001]
    assert {"name": "data", "mountPath": "/data"} in store["volumeMounts"]
    assert {"name": "run", "mountPath": "/run/store"} in store["volumeMounts"]
    maps = {d["metadata"]["name"]: d["data"] for d in documents if d["kind"] == "ConfigMap"}
    assert maps["exec-galera-hooks"] == {"start.sh": "#!/bin/sh\nexec store\n",
                                         "status.sh": "exit 8\n"}
    assert maps["exec-galera-templates"] == {"store.conf.j2": "name = {{ pod_name }}\n"}
    services = {d["metadata"]["name"]: d["spec"]["ports"] for d in documents
                if d["kind"] == "Service"}
    assert [p["port"] for p in services["exec-galera"]] == [7000, 7001]
    assert [p["port"] for p in services["exec-galera-client"]] == [7000]
    rules = one(documents, "NetworkPolicy")["spec"]["ingress"]
    assert rules[0]["ports"] == [{"port": 7001, "protocol": "TCP"}]
    assert rules[1]["ports"] == [{"port": 7000, "protocol": "TCP"}]
