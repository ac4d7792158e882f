"""Find flaky tests before CI does: run chosen tests N times in a row, optionally beside a
CPU burner on one core, and report every failure with its run, hash seed and logs.

    make flake                                   # the timing-sensitive modules, 3 runs
    make flake TESTS='tests/integration/test_join_scenarios.py -k lost_volume' RUNS=10 BURN=1
    .venv/bin/python scripts/flake.py --runs 5 --burn tests/integration/test_repair_scenarios.py

Each run is a fresh pytest process with its own ``PYTHONHASHSEED`` (set and dict order in
the tests and in every agent and player process they start), its own ``--basetemp`` (a
failed test's stores, agents and logs stay there) and its JUnit report. A failure is
replayed with ``PYTHONHASHSEED=<seed> .venv/bin/python -m pytest <test id>``.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import shlex
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

# The modules whose tests wait on elections, leaves, repairs, restarts and Galera's state
# transfers: where a value read while the system converges shows up as a flake.
TIMING_MODULES = [
    "tests/integration/test_join_scenarios.py",
    "tests/integration/test_leave_scenarios.py",
    "tests/integration/test_repair_scenarios.py",
    "tests/integration/test_sidecar_scenarios.py",
    "tests/integration/test_consul_scenarios.py",
    "tests/integration/test_learner.py",
    "tests/integration/test_exec_etcd.py",
    "tests/integration/test_exec_galera.py",
    "tests/integration/test_galera_recovery.py",
    "tests/integration/test_kube_faults.py",
    "tests/e2e/test_faults.py",
    "tests/e2e/test_repair.py",
    "tests/e2e/test_statefulset.py",
]


@dataclass
class Outcome:
    """One test's results across the runs."""

    passed: int = 0
    skipped: int = 0
    failures: list[tuple[int, str]] = field(default_factory=list)  # (run, first line)


def _burn() -> None:
    """A busy loop on one core, as a noisy neighbour on a CI machine is."""
    os.sched_setaffinity(0, {0})
    while True:
        pass


@contextlib.contextmanager
def burner(enabled: bool) -> Iterator[None]:
    if not enabled:
        yield
        return
    process = multiprocessing.Process(target=_burn, name="cpu-burner", daemon=True)
    process.start()
    print(f"flake: a CPU burner (pid {process.pid}) keeps core 0 busy", flush=True)
    try:
        yield
    finally:
        process.terminate()
        process.join(5)


def read_report(path: Path, run: int, results: dict[str, Outcome]) -> None:
    """Add one run's JUnit report to ``results`` (test id -> outcome)."""
    if not path.exists():
        return
    for case in ET.parse(path).getroot().iter("testcase"):
        name = f"{case.get('classname', '').replace('.', '/')}.py::{case.get('name')}"
        outcome = results[name]
        failed = case.find("failure")
        if failed is None:
            failed = case.find("error")
        if failed is not None:
            first = (failed.get("message") or failed.text or "").strip().splitlines()
            outcome.failures.append((run, first[0][:200] if first else "(no message)"))
        elif case.find("skipped") is not None:
            outcome.skipped += 1
        else:
            outcome.passed += 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tests", nargs="*", help="pytest arguments (default: the timing "
                                                 "modules)")
    parser.add_argument("--runs", type=int, default=3, help="runs in a row (default 3)")
    parser.add_argument("--burn", action="store_true", help="a CPU burner on core 0")
    parser.add_argument("--workers", type=int, default=1,
                        help="pytest-xdist workers per run (default 1)")
    parser.add_argument("--seed", type=int, default=None,
                        help="PYTHONHASHSEED of the first run (default: from the clock); "
                             "run i uses seed + i - 1")
    parser.add_argument("--out", type=Path, default=None,
                        help="where each run's log, report and temp dirs go "
                             "(default: .flake/<time>)")
    args = parser.parse_args(argv)
    tests = args.tests or TIMING_MODULES
    out = args.out or Path(".flake") / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    first_seed = args.seed if args.seed is not None else int(time.time()) % 4_000_000_000
    results: dict[str, Outcome] = defaultdict(Outcome)
    seeds = {}
    with burner(args.burn):
        for run in range(1, args.runs + 1):
            seed = first_seed + run - 1
            seeds[run] = seed
            command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                       "--durations=10", f"--junitxml={out}/run-{run}.xml",
                       f"--basetemp={out.resolve()}/run-{run}-tmp", *tests]
            if args.workers > 1:
                command[3:3] = ["-n", str(args.workers), "--dist", "worksteal"]
            started = time.monotonic()
            with (out / f"run-{run}.log").open("w") as log:
                done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT,
                                      env={**os.environ, "PYTHONHASHSEED": str(seed)},
                                      check=False)
            took = time.monotonic() - started
            read_report(out / f"run-{run}.xml", run, results)
            print(f"flake: run {run}/{args.runs} seed {seed}: exit {done.returncode} in "
                  f"{took:.0f} s ({out}/run-{run}.log)", flush=True)
    flaky = {name: o for name, o in results.items() if o.failures}
    print(f"\nflake: {len(results)} tests, {args.runs} runs"
          f"{' beside a CPU burner' if args.burn else ''}: {len(flaky)} failed at least once")
    for name, outcome in sorted(flaky.items()):
        print(f"  {name}: failed {len(outcome.failures)} of "
              f"{len(outcome.failures) + outcome.passed} runs")
        for run, message in outcome.failures:
            print(f"    run {run}: {message}")
            print(f"      replay: PYTHONHASHSEED={seeds[run]} {sys.executable} -m pytest "
                  f"{shlex.quote(name)}   (log {out}/run-{run}.log)")
    return 1 if flaky else 0


if __name__ == "__main__":
    sys.exit(main())
