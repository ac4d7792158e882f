"""Each image the examples name, run by the real node as its example's pod spec runs the
container: the pod's securityContext and the container's (user, read-only root, no
capabilities, RuntimeDefault seccomp), its volumes and service account, admitted under the
example namespace's restricted Pod Security; only the command is the test's."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from player.apiclient import JSON
from player.controlplane import ControlPlane
from player.manifests import build, load
from player.realnode import RealNode
from player.wait import GiveUp, wait_until
from tests.e2e.conftest import ROOT, in_namespace, require_real_node

pytestmark = pytest.mark.e2e

# Pulling an image from the node's registry and running one command, on a loaded
# two-core host (about 3 s when the host is idle).
RUN_SECONDS = 120.0
# What the kubelet reports while a container cannot start at all: no retry changes it.
STUCK = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError",
         "CreateContainerError", "RunContainerError")
_pods = itertools.count(1)


@pytest.fixture(scope="module")
def node(e2e_control_plane: ControlPlane,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealNode]:
    """One node for the module: its pods name it, so no StatefulSet of another test is
    scheduled there (pytest stops it before this worker's next module)."""
    require_real_node()
    with RealNode(e2e_control_plane, tmp_path_factory.mktemp("images-node")) as real:
        yield real


@pytest.fixture(scope="module")
def namespace(node: RealNode, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[Callable[[str], str]]:
    """``namespace("etcd")``: a namespace with everything k8s/etcd applies but its
    StatefulSet and PodDisruptionBudget (its Pod Security labels, service account, Role,
    ConfigMaps, Secrets, Services), made once."""
    made: dict[str, str] = {}

    def make(example: str) -> str:
        if example not in made:
            name = f"images-{example}"
            overlay = in_namespace(ROOT / "k8s" / example, name,
                                   tmp_path_factory.mktemp(f"images-{example}"))
            objects = [o for o in build(overlay)
                       if o["kind"] not in ("StatefulSet", "PodDisruptionBudget")]
            node.control_plane.kubectl("apply", "-f", "-",
                                       input_text=yaml.safe_dump_all(objects))
            made[example] = name
        return made[example]

    yield make
    for name in made.values():
        node.control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


def example_pod(example: str, container: str, node: str, *, command: list[str] | None = None,
                args: list[str] | None = None, image: str | None = None) -> JSON:
    """A pod of one container: ``container`` of ``example``'s pod template as it is, on
    ``node``, run once to its end (no probes or hooks: one command). Its volumes are the
    template's, a volume claim an emptyDir."""
    template = copy.deepcopy(load(ROOT / "k8s" / example).pod_spec)
    spec = next(c for c in [*template.get("initContainers", []), *template["containers"]]
                if c["name"] == container)
    for key in ("readinessProbe", "livenessProbe", "startupProbe", "lifecycle",
                "restartPolicy"):
        spec.pop(key, None)
    if command is not None:
        spec["command"] = command
    if args is not None:
        spec["args"] = args
    if image is not None:
        spec["image"] = image
    mounted = {m["name"] for m in spec.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in template.get("volumes", [])}
    pod_spec: dict[str, Any] = {
        key: template[key] for key in ("securityContext", "serviceAccountName",
                                       "automountServiceAccountToken", "enableServiceLinks")
        if key in template}
    pod_spec.update({
        "nodeName": node, "restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
        "containers": [spec],
        "volumes": [volumes.get(name, {"name": name, "emptyDir": {}}) for name in sorted(mounted)]})
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{example}-{container}-{next(_pods)}"}, "spec": pod_spec}


def run(node: RealNode, namespace: str, pod: JSON) -> tuple[int, str]:
    """``pod`` created, run to its end by the node: (its container's exit code, its log)."""
    client = node.control_plane.client()
    name = pod["metadata"]["name"]
    client.create("v1", "pods", pod, namespace=namespace)

    def ended() -> JSON | None:
        current = client.get("v1", "pods", name, namespace=namespace)
        assert current is not None, f"pod {name} is gone"
        for status in current.get("status", {}).get("containerStatuses") or []:
            waiting = status.get("state", {}).get("waiting") or {}
            if waiting.get("reason") in STUCK:
                raise GiveUp(f"{name}: {waiting['reason']}: {waiting.get('message')}")
        return current if current.get("status", {}).get("phase") in ("Succeeded",
                                                                     "Failed") else None

    try:
        ran = wait_until(ended, what=f"pod {name} run to its end", timeout=RUN_SECONDS)
        (status,) = ran["status"]["containerStatuses"]
        output = node.control_plane.kubectl("-n", namespace, "logs", name).stdout
        return int(status["state"]["terminated"]["exitCode"]), output
    finally:
        client.delete("v1", "pods", name, namespace=namespace)


@pytest.mark.parametrize(("example", "container"), [
    ("etcd", "init"), ("etcd", "agent"), ("galera", "init"), ("exec-galera", "init")])
def test_the_agent_starts_in_its_image_as_the_example_runs_it(
        node: RealNode, namespace: Callable[[str], str], example: str,
        container: str) -> None:
    code, output = run(node, namespace(example),
                       example_pod(example, container, node.name, args=["--version"]))
    assert code == 0, output
    assert output.strip() == "sts-agent 0.1.0"


@pytest.mark.parametrize("version", ["v3.4.23", "v3.5.35", "v3.6.16"])
def test_every_etcd_image_runs_its_etcd_as_the_example_runs_it(
        node: RealNode, namespace: Callable[[str], str], version: str) -> None:
    """The example's etcd container with each version's image (the tests' version matrix):
    Debian's 3.4 is linked against glibc, the 3.5 and 3.6 builds are static."""
    pod = example_pod("etcd", "etcd", node.name, command=["etcd", "--version"], args=[],
                      image=f"gcr.io/etcd-development/etcd:{version}")
    code, output = run(node, namespace("etcd"), pod)
    assert code == 0, output
    assert f"etcd Version: {version.lstrip('v')}" in output


def test_a_pod_the_restricted_policy_refuses_is_refused(
        node: RealNode, namespace: Callable[[str], str]) -> None:
    """The namespace the examples make enforces restricted Pod Security, so the pods above
    were admitted under it: the same container as root is not."""
    pod = example_pod("etcd", "agent", node.name, args=["--version"])
    pod["spec"]["securityContext"] = {**pod["spec"]["securityContext"], "runAsNonRoot": False,
                                      "runAsUser": 0}
    result = node.control_plane.kubectl("-n", namespace("etcd"), "create", "-f", "-",
                                        input_text=yaml.safe_dump(pod), check=False)
    assert result.returncode != 0
    assert "violates PodSecurity" in result.stderr and "restricted" in result.stderr


def test_a_path_outside_the_volumes_is_read_only(
        node: RealNode, namespace: Callable[[str], str]) -> None:
    """The agent's container as the example runs it: its root is read-only, it runs as the
    example's user, and its volumes are where it writes."""
    probe = ("import os; print(os.getuid(), os.getgid(), "
             "bool(os.statvfs('/').f_flag & os.ST_RDONLY), os.access('/tmp', os.W_OK))")
    code, output = run(node, namespace("etcd"), example_pod(
        "etcd", "agent", node.name, command=["python3", "-c", probe], args=[]))
    assert code == 0, output
    user = load(ROOT / "k8s" / "etcd").pod_spec["securityContext"]["runAsUser"]
    assert output.split() == [str(user), str(user), "True", "False"]

