"""The real node (player.realnode): the kubelet, containerd, the bridge CNI plugin and
CoreDNS run each raft store's example from the images of `make images` as `kubectl
apply -k` asks, under the example's securityContext, probes and restricted Pod Security;
two nodes share a host; a stopped node leaves nothing behind on the host."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.registry import raft_stores
from player.controlplane import ControlPlane
from player.manifests import build, load
from player.realnode import CGROUPS, CONTAINER_LOG_LINKS, RealNode, processes_naming
from player.wait import wait_until
from tests.e2e.conftest import ROOT, VIEW_SETTLE_SECONDS, in_namespace, require_real_node

pytestmark = pytest.mark.e2e

READY_SECONDS = 180.0  # three pods pulling their images at once, on a loaded two-core host


@pytest.fixture
def real_node(e2e_control_plane: ControlPlane, tmp_path: Path) -> Iterator[RealNode]:
    """A node for one test: the worker's control plane is shared with the player's tests,
    which a Ready node left registered between them would take pods from."""
    require_real_node()
    with RealNode(e2e_control_plane, tmp_path / "node") as node:
        yield node


def applied(example: Path, namespace: str, workdir: Path, node: RealNode) -> list[Any]:
    """``kubectl apply -k`` of ``example`` into ``namespace``; the rendered objects."""
    overlay = in_namespace(example, namespace, workdir)
    node.control_plane.kubectl("apply", "-k", str(overlay))
    return build(overlay)


def voters(address: str) -> list[str]:
    """The voters an agent's ``/status`` lists, by name."""
    with httpx.Client(timeout=5.0, trust_env=False) as http:
        members = http.get(f"http://{address}:9090/status").json()["view"]["authority"]["members"]
    return sorted(m["name"] for m in members if m["voter"])


def pods_ready(plane: ControlPlane, namespace: str, count: int) -> bool:
    items = plane.client().list("v1", "pods", namespace=namespace)["items"]
    ready = [p for p in items if any(c["type"] == "Ready" and c["status"] == "True"
                                     for c in p.get("status", {}).get("conditions") or [])]
    return len(ready) == count


@pytest.mark.parametrize("store", [*raft_stores(), "galera", "exec-galera"])
def test_the_example_runs_on_the_real_node(real_node: RealNode, tmp_path: Path,
                                           store: str) -> None:
    plane = real_node.control_plane
    namespace = f"{store}-real"
    try:
        example = load(ROOT / "k8s" / store)
        name, service = example.name, example.service_name
        applied(ROOT / "k8s" / store, namespace, tmp_path, real_node)
        wait_until(lambda: pods_ready(plane, namespace, 3),
                   what=f"{name}-0..2 Ready on the real node", timeout=READY_SECONDS)
        pods = {p["metadata"]["name"]: p
                for p in plane.client().list("v1", "pods", namespace=namespace)["items"]}
        assert {p["spec"]["nodeName"] for p in pods.values()} == {real_node.name}
        # The agent's own account, from the host through the pod's address (CNI); its
        # view is its last poll, which may not show yet a join the others already see.
        if store == "galera":  # wsrep names members by their incoming addresses
            expected = sorted(f"{p['status']['podIP']}:3306" for p in pods.values())
        elif store == "exec-galera":  # the hooks report this node only: Ready says synced
            expected = [f"{name}-0"]
        else:
            expected = [f"{name}-{i}" for i in range(3)]
        address = pods[f"{name}-0"]["status"]["podIP"]
        wait_until(lambda: voters(address) == expected,
                   what=f"{name}-0's agent to list {expected} as voters",
                   timeout=VIEW_SETTLE_SECONDS)
        # kubectl logs and exec through the kubelet; the agent runs as the example's user
        # on a read-only root, and CoreDNS answers a peer's name from the API.
        agent = next(c["name"] for c in example.pod_spec["containers"]
                     if any(port.get("name") == "agent" for port in c.get("ports", [])))
        logs = plane.kubectl("-n", namespace, "logs", f"{name}-0", "-c", agent).stdout
        assert '"readiness_changed"' in logs
        peer_name = f"{name}-1.{service}.{namespace}.svc.cluster.local"
        probe = ("import os, socket, json; print(json.dumps([os.getuid(), "
                 f"socket.gethostbyname({peer_name!r}), "
                 "bool(os.statvfs('/').f_flag & os.ST_RDONLY)]))")
        uid, peer, read_only = json.loads(plane.kubectl(
            "-n", namespace, "exec", f"{name}-0", "-c", agent, "--",
            "python3", "-c", probe).stdout)
        assert uid == example.pod_spec["securityContext"]["runAsUser"]
        assert peer == pods[f"{name}-1"]["status"]["podIP"]
        assert read_only is True
    finally:
        # The StatefulSet first, so that no pod of it is made again (on the next test's
        # node) while the namespace goes.
        plane.kubectl("-n", namespace, "delete", "statefulset", "--all", "--cascade=orphan",
                      check=False)
        plane.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.mark.parametrize("lost", [False, True], ids=["stopped", "lost-then-stopped"])
def test_a_stopped_node_leaves_nothing_behind(e2e_control_plane: ControlPlane,
                                             tmp_path: Path, lost: bool) -> None:
    """What the node made is looked for by what is its own alone (the pod's uid, the
    bridge's interface index, the runtime's socket directory): once stopped, its names
    may be another worker's node's. A node lost first (every process killed, its runtime
    never asked to stop anything) leaves nothing either once stopped."""
    require_real_node()
    plane = e2e_control_plane
    node = RealNode(plane, tmp_path / "node")
    namespace = f"real-node-end-{'lost' if lost else 'stopped'}"  # the other may still go
    try:
        node.start()
        assert node.runtime is not None
        sockets = str(node.runtime.sockets)
        kubelet_root = str(node.kubelet_root)
        bridge = int(Path(f"/sys/class/net/{node.network.bridge}/ifindex").read_text())
        plane.kubectl("create", "namespace", namespace)
        sleeper(plane, namespace, "sleeper", node.name)
        wait_until(lambda: pods_ready(plane, namespace, 1),
                   what="the sleeper pod Ready", timeout=60)
        pod = plane.client().get("v1", "pods", "sleeper", namespace=namespace)
        assert pod is not None
        uid = pod["metadata"]["uid"]
        assert list(CGROUPS.glob(f"*/{node.cgroup_root.lstrip('/')}/kubepods/*/pod{uid}"))
        if lost:
            node.lose()
            assert plane.client().get("v1", "nodes", node.name) is not None
    finally:
        node.stop()
        plane.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
    left = [str(p) for p in CGROUPS.glob(f"*/{node.cgroup_root.lstrip('/')}/kubepods/*/pod{uid}")]
    left += [line for line in Path("/proc/self/mountinfo").read_text().splitlines()
             if str(tmp_path) in line or sockets in line or kubelet_root in line]
    left += [path for path in (sockets, kubelet_root) if Path(path).exists()]
    left += [str(p) for p in CONTAINER_LOG_LINKS.glob(f"sleeper_{namespace}_*")]
    left += [p.name for p in Path("/sys/class/net").iterdir()  # the bridge, by its index
             if _ifindex(p) == str(bridge)]
    left += [f"process {pid}" for pid in processes_naming(sockets)]
    left += [f"Node {node.name}"] if plane.client().get("v1", "nodes", node.name) else []
    assert left == []


def _ifindex(link: Path) -> str:
    """The interface index of ``link`` under /sys/class/net; "" when it went meanwhile
    (another worker's node tearing its pods' links down)."""
    try:
        return (link / "ifindex").read_text().strip()
    except OSError:
        return ""


SLEEPER_IMAGE = "docker.io/library/sts-agent:0.1.0"


def images(node: RealNode) -> list[str]:
    """The images (by name) the node's runtime holds."""
    assert node.runtime is not None
    return [name for name in node.runtime.ctr("images", "ls", "-q").stdout.split()
            if not name.startswith("sha256:")]


def sleeper(plane: ControlPlane, namespace: str, name: str, node: str) -> None:
    plane.client().create("v1", "pods", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1, "containers": [{
            "name": "sleeper", "image": SLEEPER_IMAGE,
            "command": ["python3", "-c", "import time; time.sleep(3600)"]}]}},
        namespace=namespace)


def test_two_nodes_on_one_host_do_not_collide(e2e_control_plane: ControlPlane,
                                             tmp_path: Path) -> None:
    """Two test workers each start a node: both come up at once, each with its own
    address, subnet and cgroup root, and one's end leaves the other's pods running. The
    second starts with no image (as a new machine does) and pulls every layer of its
    pod's image from its registry; the first starts from the images pulled before."""
    require_real_node()
    plane = e2e_control_plane
    nodes = [RealNode(plane, tmp_path / "a"), RealNode(plane, tmp_path / "b", seeded=False)]
    namespace = "real-node-pair"
    try:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(RealNode.start, nodes))
        assert len({n.name for n in nodes}) == 2
        assert len({n.address for n in nodes}) == 2
        assert len({n.cgroup_root for n in nodes}) == 2
        assert SLEEPER_IMAGE in images(nodes[0])
        assert images(nodes[1]) == []
        plane.kubectl("create", "namespace", namespace)
        for index, node in enumerate(nodes):
            sleeper(plane, namespace, f"sleeper-{index}", node.name)
        wait_until(lambda: pods_ready(plane, namespace, 2),
                   what="a sleeper Ready on each node", timeout=60)
        assert SLEEPER_IMAGE in images(nodes[1])  # pulled, every layer
        nodes[0].stop()
        pod = plane.client().get("v1", "pods", "sleeper-1", namespace=namespace)
        assert pod is not None
        assert pod["status"]["podIP"].startswith(f"10.77.{nodes[1].network.index}.")
        # The survivor's pod still runs and answers through its kubelet.
        out = plane.kubectl("-n", namespace, "exec", "sleeper-1", "--", "python3", "-c",
                            "print('alive')").stdout
        assert out.strip() == "alive"
    finally:
        for node in nodes:
            node.stop()
        plane.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
