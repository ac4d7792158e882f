"""`python -m player`: play a k8s/ example as a StatefulSet, or run the demo.

    python -m player up k8s/etcd [--replicas 3]   # then type: scale N | kill I |
                                                  # delete I | restart | status | quit
    python -m player demo                         # STORE=etcd|rqlite
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from player import demo
from player.statefulset import StatefulSetPlayer


def up(example: Path, replicas: int | None) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="sts-agent-player-"))
    player = StatefulSetPlayer(example, workdir, echo=True)
    try:
        started = time.monotonic()
        player.control_plane.start()
        print(f"kubectl --kubeconfig {player.control_plane.kubeconfig()} "
              f"-n {player.namespace} get pods -w   # in another terminal", flush=True)
        player.start(replicas)
        demo.table(player, "started", time.monotonic() - started)
        print("commands: scale N | kill I | delete I | restart | status | quit")
        for line in sys.stdin:
            words = line.split()
            if not words:
                continue
            started = time.monotonic()
            try:
                if words[0] == "scale":
                    player.scale(int(words[1]))
                elif words[0] == "kill":
                    player.kill(int(words[1]))
                    player.wait_ready(int(words[1]))
                elif words[0] == "delete":
                    player.delete_pod(int(words[1]))
                    player.wait_ready(int(words[1]))
                elif words[0] == "restart":
                    player.rolling_restart()
                elif words[0] == "quit":
                    break
                elif words[0] != "status":
                    print(f"unknown command {words[0]!r}")
                    continue
            except (AssertionError, ValueError, IndexError, KeyError) as exc:
                print(f"{words[0]}: {exc}")
            demo.table(player, line.strip(), time.monotonic() - started)
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        player.close()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m player", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    started = commands.add_parser("up", help="play an example until 'quit' or Ctrl-C")
    started.add_argument("example", type=Path, help="a k8s/ example directory")
    started.add_argument("--replicas", type=int, default=None)
    commands.add_parser("demo", help="the README's demo (STORE=etcd|rqlite)")
    args = parser.parse_args()
    if args.command == "demo":
        return demo.main()
    return up(args.example, args.replicas)


if __name__ == "__main__":
    raise SystemExit(main())
