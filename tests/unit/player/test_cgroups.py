"""Quantities, the hierarchy found, and the files a container's cgroup is given (in a fake
cgroup root: a temporary directory)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from player import cgroups
from player.cgroups import CgroupError, Hierarchy, Limits


@pytest.mark.parametrize(("text", "value"), [
    ("200m", Decimal("0.2")), ("1", Decimal(1)), ("0.5", Decimal("0.5")), (".5", Decimal("0.5")),
    ("2", Decimal(2)), ("128Mi", Decimal(128 * 2**20)), ("1Gi", Decimal(2**30)),
    ("64Ki", Decimal(65536)), ("1K", Decimal(1000)), ("1k", Decimal(1000)),
    ("500M", Decimal(500 * 10**6)), ("1G", Decimal(10**9)), ("1e3", Decimal(1000)),
    ("1500u", Decimal("0.0015")), (2, Decimal(2)), (0.25, Decimal("0.25")),
])
def test_quantity(text: str | float, value: Decimal) -> None:
    assert cgroups.quantity(text) == value


@pytest.mark.parametrize("text", ["", "m", "-1", "1Xi", "1 Mi", "1.2.3", "Mi"])
def test_not_a_quantity(text: str) -> None:
    with pytest.raises(ValueError, match="not a Kubernetes quantity"):
        cgroups.quantity(text)


@pytest.mark.parametrize(("cpu", "quota"), [
    ("200m", 20_000), ("500m", 50_000), ("1", 100_000), ("0.5", 50_000), ("2", 200_000),
    ("1m", 1_000), ("0.0001", 1_000),  # the kubelet's smallest quota
    ("0", None),
])
def test_cpu_quota_is_the_kubelets(cpu: str, quota: int | None) -> None:
    assert Limits(cpu=cpu).cpu_quota_us == quota


def test_limits_of_a_container_spec() -> None:
    spec = {"name": "agent", "resources": {"requests": {"cpu": "20m", "memory": "64Mi"},
                                           "limits": {"cpu": "200m", "memory": "128Mi"}}}
    limits = Limits.of(spec)
    assert (limits.cpu_quota_us, limits.memory_bytes) == (20_000, 128 * 2**20)
    assert limits.describe() == "cpu 200m memory 128Mi"
    assert Limits.of({"name": "bare"}).empty
    assert Limits.of({"name": "requests only", "resources": {"requests": {"cpu": "1"}}}).empty
    assert Limits.of({"resources": {"limits": {"cpu": 1}}}).describe() == "cpu 1"


def fake_v1(tmp_path: Path) -> Hierarchy:
    roots = {"cpu": tmp_path / "cpu", "memory": tmp_path / "memory" / "job"}
    for root in roots.values():
        root.mkdir(parents=True)
    return Hierarchy(1, roots)


def test_v1_files(tmp_path: Path) -> None:
    hierarchy = fake_v1(tmp_path)
    hierarchy.prepare()
    cgroup = hierarchy.create("etcd-0-1234abcd", "agent", Limits(cpu="200m", memory="128Mi"))
    cpu = tmp_path / "cpu" / "sts-player" / "etcd-0-1234abcd" / "agent"
    memory = tmp_path / "memory" / "job" / "sts-player" / "etcd-0-1234abcd" / "agent"
    assert set(cgroup.dirs) == {cpu, memory}
    assert (cpu / "cpu.cfs_period_us").read_text() == "100000"
    assert (cpu / "cpu.cfs_quota_us").read_text() == "20000"
    assert (memory / "memory.limit_in_bytes").read_text() == str(128 * 2**20)
    assert not list(memory.glob("memory.memsw*"))


def test_v1_memory_only_lifts_the_cpu_quota(tmp_path: Path) -> None:
    hierarchy = fake_v1(tmp_path)
    cgroup = hierarchy.create("pod", "store", Limits(memory="512Mi"))
    cpu = next(d for d in cgroup.dirs if d.is_relative_to(tmp_path / "cpu"))
    assert (cpu / "cpu.cfs_quota_us").read_text() == "-1"


def test_v2_files_and_delegation(tmp_path: Path) -> None:
    root = tmp_path / "unified"
    root.mkdir()
    hierarchy = Hierarchy(2, dict.fromkeys(cgroups.CONTROLLERS, root))
    hierarchy.prepare()
    cgroup = hierarchy.create("pod", "store", Limits(cpu="1", memory="512Mi"))
    container = root / "sts-player" / "pod" / "store"
    assert cgroup.dirs == (container,)
    assert (container / "cpu.max").read_text() == "100000 100000"
    assert (container / "memory.max").read_text() == str(512 * 2**20)
    for directory in (root, root / "sts-player", root / "sts-player" / "pod"):
        assert (directory / "cgroup.subtree_control").read_text() == "+cpu +memory"
    hierarchy.create("pod", "init", Limits(memory="64Mi"))
    assert (root / "sts-player" / "pod" / "init" / "cpu.max").read_text() == "max 100000"


def test_a_restart_reuses_the_cgroup(tmp_path: Path) -> None:
    hierarchy = fake_v1(tmp_path)
    first = hierarchy.create("pod", "agent", Limits(cpu="200m"))
    assert hierarchy.create("pod", "agent", Limits(cpu="200m")) == first


def test_remove_takes_the_pod_and_the_empty_top(tmp_path: Path) -> None:
    top = tmp_path / "cpu" / "sts-player"
    for name in ("a", "b"):
        (top / "pod" / name).mkdir(parents=True)
    (top / "other-pod").mkdir()
    hierarchy = Hierarchy(1, {"cpu": tmp_path / "cpu", "memory": tmp_path / "memory"})
    hierarchy.remove("pod")
    assert not (top / "pod").exists()
    assert (top / "other-pod").is_dir()  # another pod's: kept, and the top with it
    hierarchy.remove("other-pod")
    assert not top.exists()
    hierarchy.remove("never-made")  # nothing to do


def test_a_refused_write_says_where(tmp_path: Path) -> None:
    hierarchy = Hierarchy(1, {"cpu": tmp_path / "missing", "memory": tmp_path / "missing"})
    (tmp_path / "missing").write_text("")  # a file where the hierarchy should be
    with pytest.raises(CgroupError, match="cannot make"):
        hierarchy.create("pod", "agent", Limits(cpu="1"))


MOUNTS_V1 = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / {root}/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / {root}/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / {root}/unified rw,relatime - cgroup2 cgroup2 rw
"""
OWN_V1 = "4:memory:/process_api/abc\n2:cpuacct:/\n1:cpu:/\n0::/\n"


def detect(tmp_path: Path, mounts: str, own: str) -> Hierarchy:
    (tmp_path / "mountinfo").write_text(mounts.format(root=tmp_path))
    (tmp_path / "cgroup").write_text(own)
    return cgroups.detect(mountinfo=tmp_path / "mountinfo", own=tmp_path / "cgroup")


def test_detect_v1_under_the_players_own_cgroups(tmp_path: Path) -> None:
    (tmp_path / "unified").mkdir()
    (tmp_path / "unified" / "cgroup.controllers").write_text("")  # no controllers in v2
    hierarchy = detect(tmp_path, MOUNTS_V1, OWN_V1)
    assert hierarchy.version == 1
    assert hierarchy.roots == {"cpu": tmp_path / "cpu",
                               "memory": tmp_path / "memory" / "process_api" / "abc"}


def test_detect_prefers_v2_with_its_controllers(tmp_path: Path) -> None:
    own = tmp_path / "unified" / "player.scope"
    own.mkdir(parents=True)
    (own / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    hierarchy = detect(tmp_path, MOUNTS_V1, "0::/player.scope\n")
    assert hierarchy.version == 2
    assert hierarchy.roots == {"cpu": own, "memory": own}


def test_detect_co_mounted_cpu_and_cpuacct(tmp_path: Path) -> None:
    mounts = ("25 23 0:22 / {root}/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
              "26 23 0:23 / {root}/memory rw - cgroup cgroup rw,memory\n")
    hierarchy = detect(tmp_path, mounts, "5:cpu,cpuacct:/job\n4:memory:/job\n")
    assert hierarchy.roots == {"cpu": tmp_path / "cpu,cpuacct" / "job",
                               "memory": tmp_path / "memory" / "job"}


def test_detect_none(tmp_path: Path) -> None:
    mounts = "41 31 0:38 / {root}/unified rw - cgroup2 cgroup2 rw\n"
    (tmp_path / "unified").mkdir()
    (tmp_path / "unified" / "cgroup.controllers").write_text("pids\n")
    with pytest.raises(CgroupError, match="cpu and memory"):
        detect(tmp_path, mounts, "0::/\n")


def test_system_without_a_hierarchy(monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    missing = CgroupError("no cgroup hierarchy")
    monkeypatch.setattr(cgroups, "_found", lambda: missing)
    monkeypatch.delenv("CI", raising=False)
    assert cgroups.system() is None
    assert "without their CPU and memory limits: no cgroup hierarchy" in capsys.readouterr().err
    monkeypatch.setenv("CI", "true")
    with pytest.raises(CgroupError, match="cannot be played: no cgroup hierarchy"):
        cgroups.system()
