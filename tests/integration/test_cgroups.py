"""Containers' limits on this machine's real cgroups: a busy loop started as a pod's
container is (launch.py joining through passed descriptors, only without the network
namespace) gets its CPU quota and no more, and a process past its memory limit is killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from player import cgroups
from player.cgroups import Hierarchy, Limits
from player.kubelet import LAUNCH
from player.wait import wait_until

pytestmark = pytest.mark.integration

# Busy for `seconds` of wall time, then say how much CPU time that took.
BUSY = """
import json, sys, time
seconds = float(sys.argv[1])
cpu, start = time.process_time(), time.monotonic()
while time.monotonic() - start < seconds:
    pass
print(json.dumps({"cpu": time.process_time() - cpu, "wall": time.monotonic() - start}))
"""


@pytest.fixture
def hierarchy() -> Iterator[Hierarchy]:
    """This machine's hierarchy (outside CI, skip where there is none: CI fails instead)."""
    found = cgroups.system()
    if found is None:
        pytest.skip("no usable cgroup hierarchy (root and a cgroup fs are needed)")
    yield found


@pytest.fixture
def pod(hierarchy: Hierarchy) -> Iterator[str]:
    """A pod's cgroup name of this test's own, removed after it."""
    name = f"test-cgroups-{uuid.uuid4().hex[:8]}"
    yield name
    hierarchy.remove(name)


def start(hierarchy: Hierarchy, pod: str, limits: Limits, argv: list[str], workdir: Path,
          stdin: int | None = None) -> subprocess.Popen[str]:
    """launch.py with a spec as the kubelet writes it: no mounts, the container's cgroup."""
    cgroup = hierarchy.create(pod, "container", limits)
    fds = cgroup.open_procs()
    try:
        spec = workdir / f"launch-{uuid.uuid4().hex[:8]}.json"
        spec.write_text(json.dumps({"argv": argv, "env": {"PATH": "/usr/bin:/bin"},
                                    "mounts": [], "working_dir": str(workdir),
                                    "cgroup_fds": fds}))
        return subprocess.Popen([sys.executable, str(LAUNCH), str(spec)], pass_fds=fds,
                                stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    finally:
        for fd in fds:
            os.close(fd)


def busy_fraction(hierarchy: Hierarchy, pod: str, limits: Limits, workdir: Path) -> float:
    """The share of one core a 2 s busy loop got under ``limits``."""
    proc = start(hierarchy, pod, limits, [sys.executable, "-c", BUSY, "2"], workdir)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    used = json.loads(out)
    return float(used["cpu"]) / float(used["wall"])


def throttled(hierarchy: Hierarchy, pod: str) -> int:
    """How many CFS periods the container's cgroup was throttled in (v1 and v2 alike)."""
    cpu = hierarchy.roots["cpu"] / cgroups.TOP / pod / "container"
    stat = dict(line.split() for line in (cpu / "cpu.stat").read_text().splitlines())
    return int(stat["nr_throttled"])


def test_a_cpu_limit_holds_a_busy_loop_to_its_quota(hierarchy: Hierarchy, pod: str,
                                                    tmp_path: Path) -> None:
    limited = busy_fraction(hierarchy, pod, Limits(cpu="200m"), tmp_path)
    print(f"cgroup v{hierarchy.version}: 200m -> {limited:.3f} of a core")
    assert limited < 0.35, limited
    assert throttled(hierarchy, pod) > 0
    # The same cgroup once its quota is lifted (a restart reuses it): the loop runs free.
    free = busy_fraction(hierarchy, pod, Limits(memory="512Mi"), tmp_path)
    print(f"cgroup v{hierarchy.version}: no cpu limit -> {free:.3f} of a core")
    assert free > 2 * limited, (free, limited)  # not 1.0: other tests may share the cores


def test_past_its_memory_limit_a_process_is_killed(hierarchy: Hierarchy, pod: str,
                                                   tmp_path: Path) -> None:
    hog = "data = b'x' * (256 * 2**20); print('survived', len(data))"
    proc = start(hierarchy, pod, Limits(memory="64Mi"), [sys.executable, "-c", hog], tmp_path)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, out, err)
    assert "survived" not in out
    # Within its limit the same process lives.
    proc = start(hierarchy, pod, Limits(memory="512Mi"), [sys.executable, "-c", hog], tmp_path)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "survived" in out, (proc.returncode, out, err)


def test_removing_a_pods_cgroups_kills_what_is_left(hierarchy: Hierarchy, pod: str,
                                                    tmp_path: Path) -> None:
    waits = [sys.executable, "-c", "import sys; sys.stdin.read()"]  # until stdin closes
    proc = start(hierarchy, pod, Limits(cpu="100m"), waits, tmp_path, stdin=subprocess.PIPE)
    procs = hierarchy.roots["cpu"] / cgroups.TOP / pod / "container" / "cgroup.procs"
    wait_until(lambda: procs.read_text().split() == [str(proc.pid)], timeout=10,
               what="launch.py to join the container's cgroup")
    hierarchy.remove(pod)
    assert proc.wait(timeout=10) == -signal.SIGKILL
    assert not any((top / pod).exists() for top in hierarchy.tops)
