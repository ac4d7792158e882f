"""Create 3 pods → all Ready: the k8s/rqlite example with sts-agent, next to the same
StatefulSet with rqlite's native discovery alone (-disco-mode=dns -bootstrap-expect 3,
readiness on rqlite's own /readyz), run the same way on a real node, interleaved, in one
run."""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cold_start import machine, print_table
from player.controlplane import ControlPlane
from player.statefulset import StatefulSetPlayer

ROOT = Path(__file__).resolve().parents[1]
DROPPED_FLAGS = ("-join", "-auth", "-join-as")


def native(player: StatefulSetPlayer) -> None:
    """The pod template without sts-agent: rqlite discovers its peers through the
    headless Service itself and its readiness is its own /readyz (a JSON patch of the
    StatefulSet applied with the example)."""
    pod: dict[str, Any] = copy.deepcopy(player.example.pod_spec)
    pod["initContainers"] = []
    pod["containers"] = [c for c in pod["containers"] if c["name"] == "rqlite"]
    (rqlite,) = pod["containers"]
    disco = json.dumps({"name": f"{player.example.service_name}.{player.namespace}.svc."
                                f"cluster.local", "port": 4002})
    args = [a for a in rqlite["args"] if not a.startswith(tuple(f + "=" for f in
                                                                DROPPED_FLAGS))]
    rqlite["args"] = [*args[:-1], "-disco-mode=dns", f"-disco-config={disco}", args[-1]]
    rqlite["readinessProbe"] = {"httpGet": {"path": "/readyz", "port": 4001},
                                "periodSeconds": 2, "failureThreshold": 1}
    rqlite["lifecycle"] = {}
    player.json_patches.append({"op": "replace", "path": "/spec/template/spec", "value": pod})


def one(workdir: Path, plane: ControlPlane, namespace: str, *, agent: bool) -> float:
    """`kubectl apply -k` to all three pods Ready (the control plane already up; the
    player's node start, about a second, is not counted)."""
    player = StatefulSetPlayer(ROOT / "k8s" / "rqlite", workdir, control_plane=plane,
                               namespace=namespace)
    try:
        if not agent:
            native(player)
        started = time.perf_counter()
        player.start(3)  # the node, then apply; returns when all three pods are Ready
        return time.perf_counter() - started - player.node.started_seconds
    finally:
        player.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="sts-agent-bench-start-"))
    samples: dict[str, list[float]] = {}
    plane = ControlPlane(base / "control-plane").start()
    try:
        for run in range(args.runs):
            samples.setdefault("rqlite with sts-agent (k8s/rqlite as shipped)", []).append(
                one(base / f"agent-{run}", plane, f"agent-{run}", agent=True))
            samples.setdefault("rqlite alone: -disco-mode=dns -bootstrap-expect 3, "
                               "readiness on rqlite's /readyz", []).append(
                one(base / f"native-{run}", plane, f"native-{run}", agent=False))
    finally:
        plane.stop()
        shutil.rmtree(base, ignore_errors=True)
    print(f"Date: {datetime.date.today().isoformat()}; machine: {machine()}; "
          f"{args.runs} runs each, interleaved, on one real control plane (kubectl apply -k "
          "to all pods Ready, on a real node: kubelet, containerd, CNI, CoreDNS); readiness "
          "probes every 2 s as in the manifest\n")
    print_table(samples, what="create 3 pods → all Ready", digits=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
