"""Galera full outage: every mariadbd of three pods SIGKILLed (a power cut) or stopped
cleanly all at once, then every pod started again. With the agent (each pod through
`sts-agent init`: position recovery and the vote) to every node Synced in one Primary
component and every sidecar Ready; next to MariaDB's own path for the power cut (each
position recovered as its start scripts do, every node started with it, `pc.recovery`
re-forming the last Primary component from gvwstate.dat), in one run."""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.stores.galera.position import parse_recovered
from bench.cold_start import machine, print_table
from player.agentnamespace import AgentNamespace
from player.controlplane import ControlPlane
from player.dns import Dnsmasq
from player.pods import InitPods
from player.stores.galera import GaleraCluster, GaleraHarness, render_config

PODS = (0, 1, 2)
ROWS = 200


def synced_everywhere(cluster: GaleraCluster) -> bool:
    return all(cluster.synced(o, size=len(PODS)) for o in PODS)


def wait(condition: object, what: str, started: float, timeout: float = 300.0) -> float:
    """Seconds from ``started`` until ``condition()`` holds (polled every 0.05 s)."""
    assert callable(condition)
    while not condition():
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"{what}: not within {timeout:g} s")
        time.sleep(0.05)
    return time.perf_counter() - started


def outage(pods: InitPods, how: str) -> None:
    for ordinal in PODS:
        pods.harness.sidecars.pop(ordinal).proc.kill()
    nodes = [pods.cluster.nodes[o] for o in PODS]
    if how == "power cut":
        for node in nodes:
            assert node.proc is not None
            node.proc.kill()
    else:
        with concurrent.futures.ThreadPoolExecutor(len(nodes)) as pool:
            list(pool.map(lambda n: n.proc.stop(timeout=60), nodes))


def with_agent(pods: InitPods, cluster: GaleraCluster) -> tuple[float, float]:
    """(seconds to every node Synced in a Primary component of 3, to every sidecar Ready)."""
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        starting = pool.submit(pods.start, *PODS)
        synced = wait(lambda: synced_everywhere(cluster), "all Synced", started)
        starting.result(timeout=300)
    ready = wait(lambda: all(pods.harness.sidecars[o].readyz()[0] == 200 for o in PODS),
                 "all Ready", started)
    return synced, ready


def recovered_position(pods: InitPods, ordinal: int) -> str:
    """What MariaDB's own start scripts (galera_recovery) pass as --wsrep-start-position:
    the position `mariadbd --wsrep-recover` reads from InnoDB."""
    data = pods.data_dir(ordinal)
    log = data / "bench-recover.log"  # in the data dir: mariadbd runs as mysql
    log.unlink(missing_ok=True)
    subprocess.run(["mariadbd", "--no-defaults", "--user=mysql",
                    "--wsrep-provider=/usr/lib/galera/libgalera_smm.so", f"--datadir={data}",
                    "--wsrep-on=ON", "--wsrep-cluster-address=gcomm://", "--binlog-format=ROW",
                    "--skip-networking", f"--socket={data / 'bench-recover.sock'}",
                    "--wsrep-recover", f"--log-error={log}"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    position = parse_recovered(log.read_text())
    assert position is not None, f"galera-{ordinal}: no position recovered"
    return str(position)


def mariadb_alone(pods: InitPods, cluster: GaleraCluster) -> float:
    """MariaDB's own path, no agent: each node, at once as pods would, recovers its
    position as its start scripts do and starts with it and no bootstrap; pc.recovery
    re-forms the last Primary component from gvwstate.dat. The config is the one the
    inits render here (the template's own defaults: the same gcache, whose ring buffer
    every node scans after a crash). From the restart on."""
    def start(ordinal: int) -> None:
        config = pods.config_dir(ordinal) / "galera.cnf"
        config.write_text(render_config(cluster.ip(ordinal), f"galera-{ordinal}",
                                        cluster.cluster_address(list(PODS)), new_cluster=False,
                                        template_vars={}))
        position = f"--wsrep-start-position={recovered_position(pods, ordinal)}"
        cluster.launch(ordinal, [*cluster.store_command(ordinal, config), position])

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(len(PODS)) as pool:
        list(pool.map(start, PODS))
    return wait(lambda: synced_everywhere(cluster), "pc.recovery: all Synced", started)


def rows(pods: InitPods) -> int:
    return len(pods.harness.kv.read_prefix(pods.harness.store_url(0), "w/"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs)")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="sts-agent-bench-galera-"))
    samples: dict[str, list[float]] = {}
    plane = ControlPlane(base / "control-plane", components=()).start()
    try:
        namespace = AgentNamespace(plane, base / "kube")
        namespace.add_statefulset("galera", replicas=3, pod_management="Parallel")
        with Dnsmasq(base / "dns", domains=("cluster.local",),
                     binary=shutil.which("dnsmasq") or "/usr/sbin/dnsmasq") as dns:
            harness = GaleraHarness(base / "galera")
            with InitPods("galera", base / "pods", dns, harness=harness,
                          namespace=namespace.name, env=namespace.env()) as pods:
                cluster: GaleraCluster = harness.cluster
                pods.start(*PODS)
                pods.wait_ready(*PODS)
                for index in range(ROWS):
                    assert harness.put(f"w/{index}", str(index))
                for _ in range(args.runs):
                    for how in ("power cut", "clean stop of all"):
                        outage(pods, how)
                        synced, ready = with_agent(pods, cluster)
                        samples.setdefault(f"{how}, the agent: every node Synced in one "
                                           "Primary component", []).append(synced)
                        samples.setdefault(f"{how}, the agent: every sidecar Ready",
                                           []).append(ready)
                        assert rows(pods) == ROWS, "rows lost"
                    outage(pods, "power cut")
                    samples.setdefault("power cut, MariaDB's own (recovered positions, "
                                       "pc.recovery): every node Synced",
                                       []).append(mariadb_alone(pods, cluster))
                    assert rows(pods) == ROWS, "rows lost"
                    for ordinal in PODS:  # back under the agent for the next run
                        pods.start_sidecar(ordinal)
                    pods.wait_ready(*PODS)
        namespace.delete()
    finally:
        plane.stop()
        if args.keep:
            print(f"work dir kept: {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    print(f"Date: {datetime.date.today().isoformat()}; machine: {machine()}; "
          f"{args.runs} runs each, 3 pods of MariaDB 10.11 + galera-4 26.4 on loopback, "
          f"{ROWS} rows; from the restart to the condition\n")
    print_table(samples)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
