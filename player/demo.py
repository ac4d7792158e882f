"""The README's demo: the k8s/ example of STORE (etcd by default, rqlite, consul, galera)
applied with sts-agent on a local control plane and node: 3 pods, scaled to 5, rolled,
scaled down (a raft store to 2; Galera to 3, then a full outage recovered by the pods'
vote); a table per step and a verdict."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from agent.registry import STORES
from player.statefulset import StatefulSetPlayer
from player.wait import wait_until
from player.writer import writer_for

ROOT = Path(__file__).resolve().parents[1]
# A client that waits longer than this for a write has met a cluster without quorum
# (elections here take about a second).
QUORUM_GAP_SECONDS = 5.0


def row(player: StatefulSetPlayer, ordinal: int, http: httpx.Client) -> list[str]:
    pod = player.pods[ordinal]
    role, member, voter = "-", "-", "-"
    try:
        view: dict[str, Any] = http.get(f"http://{pod.ip}:9090/status").json()["view"]
        authority = view.get("authority") or {}
        self_id = view.get("self_id")
        found = next((m for m in authority.get("members", []) if m["id"] == self_id), None)
        member = "yes" if found else "no"
        leads = bool(found) and authority.get("leader_id") == self_id
        if not STORES[player.name].raft:  # Galera: no leader, no voters; a component
            role = "primary" if leads else "-"
        else:
            voter = "yes" if found and found["voter"] else "no"
            if leads:
                role = "leader"
            elif found:
                role = "follower" if found["voter"] else "learner"
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        pass
    return [pod.name, pod.ip, pod.phase, "yes" if pod.ready else "no", role, member, voter]


def table(player: StatefulSetPlayer, title: str, took: float,
          wait: float | None = None) -> None:
    header = ["pod", "ip", "phase", "ready", "role", "member", "voter"]
    with httpx.Client(timeout=1.0, trust_env=False) as http:
        rows = [row(player, o, http) for o in sorted(player.pods)]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    waited = "" if wait is None else f"; longest wait between acknowledged writes {wait:.1f} s"
    print(f"\n== {title} ({took:.1f} s{waited})")
    for line in [header, *rows]:
        print("  " + "  ".join(cell.ljust(width) for cell, width in zip(line, widths,
                                                                          strict=True)))
    sys.stdout.flush()


def main() -> int:
    store = os.environ.get("STORE", "etcd")
    if store not in STORES:
        print(f"demo: STORE={store!r}: k8s/ examples exist for {sorted(STORES)}",
              file=sys.stderr)
        return 2
    spec = STORES[store]
    workdir = Path(tempfile.mkdtemp(prefix=f"sts-agent-demo-{store}-"))
    player = StatefulSetPlayer(ROOT / "k8s" / store, workdir, echo=True)
    writer = writer_for(player)
    print(f"sts-agent demo: k8s/{store} on the real Kubernetes control plane (kube-apiserver, "
          f"controller-manager, scheduler) and a real node (kubelet, containerd, CNI, "
          f"CoreDNS) on this host, from the images of `make images`; work dir {workdir}")

    def start() -> None:
        player.control_plane.start()
        kubectl = (f"kubectl --kubeconfig {player.control_plane.kubeconfig()} "
                   f"-n {player.namespace}")
        agent = next(c["name"] for c in player.example.pod_spec["containers"]
                     if any(port.get("name") == "agent" for port in c.get("ports", [])))
        print(f"\nwatch along (another shell, while the demo runs):\n"
              f"  {kubectl} get pods -o wide -w\n"
              f"  {kubectl} logs {player.name}-0 -c {agent} -f\n"
              f"  {kubectl} exec {player.name}-0 -c {agent} -- sts-agent status",
              flush=True)
        player.start(3)

    # The longest wait between acknowledged writes before an outage (None: no outage).
    steady_gap: float | None = None

    def full_outage() -> None:
        """galera-2's node shut down cleanly; more writes; the other two killed."""
        nonlocal steady_gap
        steady_gap = writer.longest_gap
        player.shut_down(2)
        before = len(writer.acknowledged)
        wait_until(lambda: len(writer.acknowledged) >= before + 20,
                   what="20 writes acknowledged after galera-2 stopped", timeout=60)
        player.outage()
        player.wait_ready(timeout=300)

    try:
        steps: list[tuple[str, Callable[[], object]]] = [
                 ("create 3 pods (Parallel)", start),
                 ("scale to 5", lambda: player.scale(5)),
                 # Rolled while there are 5: a 2-member cluster needs both members, so
                 # restarting one of them is an outage by raft's arithmetic.
                 ("rolling restart", player.rolling_restart)]
        if spec.raft:
            steps.append(("scale to 2", lambda: player.scale(2)))
        else:
            steps += [("scale to 3", lambda: player.scale(3)),
                      ("full outage: galera-2 stopped cleanly, more writes, the rest "
                       "killed; the pods vote and start again", full_outage)]
        for number, (title, action) in enumerate(steps):
            started = time.monotonic()
            action()
            table(player, title, time.monotonic() - started,
                  writer.longest_wait(started) if number else None)
            if number == 0:
                writer.start()  # a steady client from here on
        time.sleep(1.0)  # let the writer land a few more writes after the last step
        writer.stop()
        if steady_gap is None:
            steady_gap = writer.longest_gap
        if spec.raft:
            names = sorted(m["name"] for m in player.members())
            pods = sorted(p.name for p in player.pods.values())
        else:  # Galera's members are the client addresses of its Primary component
            names = sorted(m["address"].rsplit(":", 1)[0] for m in player.members())
            pods = sorted(p.ip for p in player.pods.values())
        first = player.pods[min(player.pods)].ip
        lost = writer.lost(f"{spec.scheme}://{first}:{spec.client_port}")
        quorum = steady_gap < QUORUM_GAP_SECONDS
        outage = (f"; writes resumed {writer.longest_gap:.1f} s after the outage began"
                  if not spec.raft else "")
        ok = names == pods and not lost and quorum
        print(f"\nverdict: {'OK' if ok else 'FAILED'} — quorum kept: {quorum} (longest "
              f"wait between acknowledged writes {steady_gap:.1f} s{outage}); members = "
              f"pods: {names == pods} ({', '.join(names)}); writes intact: {not lost} "
              f"({len(writer.acknowledged)} acknowledged, {len(lost)} lost)")
        return 0 if ok else 1
    except KeyboardInterrupt:
        print("\ninterrupted: stopping every pod", file=sys.stderr)
        return 130
    except AssertionError as exc:
        print(f"\ndemo failed: {exc}", file=sys.stderr)
        return 1
    finally:
        writer.stop()
        player.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
