"""Galera's write gaps on planned operations: scale 3→5, a rolling restart, scale 5→3 on
the real node, k8s/galera as shipped next to the same example with Galera's default EVS
join retransmission and keepalive periods (1 s each), in one run, under a steady writer."""

from __future__ import annotations

import argparse
import datetime
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cold_start import machine
from bench.openloop import OpenLoopWriter, window
from player.controlplane import ControlPlane
from player.statefulset import StatefulSetPlayer
from player.stores.galera import GaleraKv

ROOT = Path(__file__).resolve().parents[1]
# What k8s/galera ships in wsrep_provider_options, and what the other variant drops.
OPTION = ";evs.join_retrans_period=PT0.2S;evs.keepalive_period=PT0.2S"
VARIANTS = {"shipped": "as shipped (join messages and keepalives every 0.2 s)",
            "default": "Galera's defaults (every 1 s)"}
TAIL_SECONDS = 2.0  # writes due this long after the pods are Ready still count
SLOW_SECONDS = 0.5  # the gap target of a planned operation
OPERATIONS = ("scale 3→5", "rolling restart", "scale 5→3")


def example(variant: str, workdir: Path) -> Path:
    """k8s/galera, or a copy of it (with the base it builds on) without ``OPTION``."""
    if variant == "shipped":
        return ROOT / "k8s" / "galera"
    for part in ("galera", "base"):
        shutil.copytree(ROOT / "k8s" / part, workdir / "k8s" / part, symlinks=True)
    template = workdir / "k8s" / "galera" / "templates" / "galera.cnf.j2"
    text = template.read_text(encoding="utf-8")
    if OPTION not in text:
        raise SystemExit(f"{template}: {OPTION!r} is no longer there to drop")
    template.write_text(text.replace(OPTION, ""), encoding="utf-8")
    return workdir / "k8s" / "galera"


def measure(variant: str, workdir: Path, plane: ControlPlane, *,
            rate: float) -> list[list[str]]:
    """Three pods Ready, then each operation under the writer; a row each."""
    player = StatefulSetPlayer(example(variant, workdir), workdir / "sts",
                               control_plane=plane, namespace=f"galera-{variant}")
    auth = GaleraKv.credentials(player.example.secrets)

    def ready_urls() -> list[str]:
        return [GaleraKv.client_url(p.ip, "galera") for p in list(player.pods.values())
                if p.ready and not p.terminating]

    steps: dict[str, Callable[[], None]] = dict(zip(OPERATIONS, (
        lambda: player.scale(5, timeout=300),
        lambda: player.rolling_restart(timeout=600),
        lambda: player.scale(3, timeout=300)), strict=True))
    writer = OpenLoopWriter(GaleraKv, ready_urls, rate=rate, auth=auth)
    rows = []
    with player:
        try:
            player.start(3)
            GaleraKv.setup(player)
            writer.start()
            for name, step in steps.items():
                started = time.monotonic()
                step()
                ready = time.monotonic()
                end = ready + TAIL_SECONDS
                while time.monotonic() < end:
                    time.sleep(0.1)  # the tail's writes are due until then
                writes = writer.snapshot()
                seen = window(writes, started, end)
                slow = sum(1 for w in writes if started <= w.due < end and w.ok
                           and w.latency >= SLOW_SECONDS)
                rows.append([name, VARIANTS[variant], f"{seen.longest_gap:.2f}", str(slow),
                             f"{seen.failed} / {seen.writes}", f"{seen.p99 * 1000:.0f}",
                             f"{ready - started:.1f}"])
                print(f"  galera ({variant}) {name}: {rows[-1]}", flush=True)
        finally:
            writer.stop()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    # The client opens a connection per write: at 100 a second it queued on two cores
    # (each write's latency then counted the queue, and the writes stopped being due).
    parser.add_argument("--rate", type=float, default=20.0, help="writes a second")
    parser.add_argument("--variants", default="shipped,default")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="sts-agent-bench-galera-joins-"))
    rows: list[list[str]] = []
    plane = ControlPlane(workdir / "control-plane").start()
    try:
        for variant in args.variants.split(","):
            rows += measure(variant, workdir / variant, plane, rate=args.rate)
    finally:
        plane.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nDate: {datetime.date.today().isoformat()}; machine: {machine()}; "
          f"{args.rate:g} writes/s, one run of each operation in turn on one cluster\n")
    print("| operation | galera.cnf | longest gap s | writes of 0.5 s or more | failed / writes "
          "| p99 ms | Ready again s |")
    print("|---|---|---|---|---|---|---|")
    for row in sorted(rows, key=lambda r: (OPERATIONS.index(r[0]), r[1])):
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
