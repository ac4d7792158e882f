"""Containers' CPU and memory limits as a kubelet sets them: one cgroup per container, in
cgroup v2 when the unified hierarchy offers the cpu and memory controllers, else in v1."""

from __future__ import annotations

import functools
import math
import os
import re
import signal
import sys
import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from player.wait import WaitTimeout, wait_until

PERIOD_US = 100_000  # the kubelet's CFS period
MIN_QUOTA_US = 1_000  # the kubelet's (and the kernel's) smallest quota
TOP = "sts-player"  # our subtree under the player's own cgroup: <top>/<pod>/<container>
CONTROLLERS = ("cpu", "memory")

SUFFIXES = {
    "": Decimal(1), "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
    "k": Decimal(10) ** 3, "K": Decimal(10) ** 3, "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9, "T": Decimal(10) ** 12, "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40, "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
}
QUANTITY = re.compile(r"(\+?(?:\d+\.?\d*|\.\d+))([eE][+-]?\d+|[KMGTPE]i|[numkKMGTPE]?)")


class CgroupError(Exception):
    """No usable cgroup hierarchy, or one that refused our directory or a limit."""


def quantity(text: str | float) -> Decimal:
    """A Kubernetes quantity ("200m", "0.5", "128Mi", "1G", "1e3") as a number."""
    match = QUANTITY.fullmatch(str(text).strip())
    if match is None:
        raise ValueError(f"not a Kubernetes quantity: {text!r}")
    number, suffix = match.groups()
    try:
        if suffix[:1] in ("e", "E"):
            return Decimal(number) * Decimal(10) ** int(suffix[1:])
        return Decimal(number) * SUFFIXES[suffix]
    except InvalidOperation:
        raise ValueError(f"not a Kubernetes quantity: {text!r}") from None


def millicores(text: str | float) -> int:
    """CPU in thousandths of a core, rounded up as the API server does ("0.5" -> 500)."""
    return math.ceil(quantity(text) * 1000)


def byte_count(text: str | float) -> int:
    """Memory in bytes, rounded up ("128Mi" -> 134217728)."""
    return math.ceil(quantity(text))


@dataclass(frozen=True)
class Limits:
    """A container's resources.limits. Requests are not played: they only place pods and
    weigh CPU under contention (cpu.shares), and the player neither schedules nor
    competes with other workloads."""

    cpu: str | None = None
    memory: str | None = None

    @classmethod
    def of(cls, container: dict[str, Any]) -> Limits:
        limits = (container.get("resources") or {}).get("limits") or {}
        cpu, memory = limits.get("cpu"), limits.get("memory")
        return cls(cpu=None if cpu is None else str(cpu),
                   memory=None if memory is None else str(memory))

    @property
    def cpu_quota_us(self) -> int | None:
        """CFS quota per PERIOD_US, as the kubelet's MilliCPUToQuota: None for no limit."""
        if self.cpu is None or millicores(self.cpu) == 0:
            return None
        return max(millicores(self.cpu) * PERIOD_US // 1000, MIN_QUOTA_US)

    @property
    def memory_bytes(self) -> int | None:
        if self.memory is None or byte_count(self.memory) == 0:
            return None
        return byte_count(self.memory)

    @property
    def empty(self) -> bool:
        return self.cpu_quota_us is None and self.memory_bytes is None

    def describe(self) -> str:
        """"cpu 200m memory 128Mi", as the manifest says it."""
        parts = [f"cpu {self.cpu}" if self.cpu_quota_us is not None else "",
                 f"memory {self.memory}" if self.memory_bytes is not None else ""]
        return " ".join(part for part in parts if part)


def write(path: Path, value: str) -> None:
    try:
        path.write_text(value)
    except OSError as exc:
        raise CgroupError(f"cannot write {value!r} to {path}: {exc.strerror}") from None


@dataclass(frozen=True)
class Cgroup:
    """One container's cgroup: a directory per hierarchy its processes join."""

    dirs: tuple[Path, ...]

    def open_procs(self) -> list[int]:
        """Write-only descriptors of each directory's cgroup.procs, for launch.py to join
        through: inside `ip netns exec` /sys is a fresh sysfs without /sys/fs/cgroup, so
        the paths themselves cannot be opened there. The caller closes them."""
        fds: list[int] = []
        try:
            for directory in self.dirs:
                fds.append(os.open(directory / "cgroup.procs", os.O_WRONLY))
        except OSError as exc:
            for fd in fds:
                os.close(fd)
            raise CgroupError(f"cannot open {exc.filename}: {exc.strerror}") from None
        return fds


@dataclass(frozen=True)
class Hierarchy:
    """Where this process makes its cgroups: for v2 one directory, for v1 one per
    controller (each under the player's own cgroup, so the sandbox's accounting holds)."""

    version: int
    roots: dict[str, Path]  # controller -> directory; v2 names the same one for both

    @property
    def tops(self) -> list[Path]:
        return sorted({root / TOP for root in self.roots.values()})

    def prepare(self) -> None:
        """Check that our top directory can be made (in v2, delegate cpu and memory to
        it); it is made again by each pod and removed with the last."""
        for root in sorted(set(self.roots.values())):
            if self.version == 2:
                try:
                    write(root / "cgroup.subtree_control", "+cpu +memory")
                except CgroupError as exc:
                    raise CgroupError(f"{exc} (in v2 a cgroup with processes of its own "
                                      "cannot delegate controllers to children: start the "
                                      "player in a cgroup of its own)") from None
            make(root / TOP)
            remove_empty(root / TOP)

    def create(self, pod: str, container: str, limits: Limits) -> Cgroup:
        """<top>/<pod>/<container> with ``limits`` set; idempotent, so a restarted
        container reuses its cgroup."""
        dirs: list[Path] = []
        for top in self.tops:
            make(top / pod / container)
            if self.version == 2:  # cpu and memory reach a container only if delegated
                write(top / "cgroup.subtree_control", "+cpu +memory")
                write(top / pod / "cgroup.subtree_control", "+cpu +memory")
            dirs.append(top / pod / container)
        quota, memory = limits.cpu_quota_us, limits.memory_bytes
        if self.version == 2:
            write(dirs[0] / "cpu.max", f"{quota or 'max'} {PERIOD_US}")
            write(dirs[0] / "memory.max", str(memory or "max"))
        else:
            cpu = self.roots["cpu"] / TOP / pod / container
            write(cpu / "cpu.cfs_period_us", str(PERIOD_US))
            write(cpu / "cpu.cfs_quota_us", str(quota or -1))
            write(self.roots["memory"] / TOP / pod / container / "memory.limit_in_bytes",
                  str(memory or -1))
        return Cgroup(tuple(dirs))

    def remove(self, pod: str, *, timeout: float = 5.0) -> None:
        """Remove <top>/<pod> and its containers' cgroups, deepest first, and <top> if it
        was the last pod (an empty child left behind keeps the player's own cgroup from
        being removed). A process still listed is the container's (only they join), so
        it is killed, as the kubelet kills what is left in a pod's cgroup; the kernel may
        list a dying task a moment longer, so rmdir is retried until ``timeout``."""
        deadline = time.monotonic() + timeout
        for top in self.tops:
            if (top / pod).is_dir():
                for directory in [*(d for d in (top / pod).iterdir() if d.is_dir()),
                                  top / pod]:
                    remove_dir(directory, deadline)
            remove_empty(top)


def make(directory: Path) -> None:
    for attempt in range(3):  # the last pod's cleanup may rmdir <top> between our mkdirs
        try:
            directory.mkdir(parents=True, exist_ok=True)
            return
        except FileNotFoundError:
            if attempt == 2:
                raise CgroupError(f"cannot make {directory}: a parent keeps vanishing") from None
        except OSError as exc:
            raise CgroupError(f"cannot make {directory}: {exc.strerror}") from None


def remove_empty(directory: Path) -> None:
    """rmdir where no other pod (of this player or another) has a cgroup any more."""
    try:
        directory.rmdir()
    except OSError:
        pass  # in use (EBUSY, ENOTEMPTY) or already gone


def remove_dir(directory: Path, deadline: float) -> None:
    def removed() -> bool:
        procs = directory / "cgroup.procs"
        for pid in (procs.read_text().split() if procs.exists() else []):
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            directory.rmdir()  # EBUSY while the kernel still lists a dying task
        except FileNotFoundError:
            pass
        return True

    try:
        wait_until(removed, what=f"{directory} removed", interval=0.01,
                   timeout=max(0.0, deadline - time.monotonic()))
    except WaitTimeout as exc:
        raise CgroupError(str(exc)) from None


def detect(*, mountinfo: Path = Path("/proc/self/mountinfo"),
           own: Path = Path("/proc/self/cgroup")) -> Hierarchy:
    """The hierarchy this process can use: v2 where its unified cgroup offers cpu and
    memory, else v1's cpu and memory hierarchies; CgroupError says why there is none."""
    mounts: list[tuple[str, str, str, set[str]]] = []  # type, mount root, point, options
    for line in mountinfo.read_text().splitlines():
        before, _, after = line.partition(" - ")
        fields, source = before.split(), after.split()  # source: type, device, options
        if len(fields) >= 5 and len(source) >= 3 and source[0] in ("cgroup", "cgroup2"):
            point = fields[4].replace("\\040", " ")
            mounts.append((source[0], fields[3], point, set(source[2].split(","))))
    paths: dict[str, str] = {}  # controller ("" for v2) -> this process's cgroup
    for line in own.read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path

    def place(mount_root: str, point: str, path: str) -> Path:
        relative = os.path.relpath(path, mount_root)
        return Path(point) if relative.startswith("..") else Path(point) / relative

    for kind, mount_root, point, _ in mounts:
        if kind == "cgroup2" and "" in paths:
            root = place(mount_root, point, paths[""])
            offered = root / "cgroup.controllers"
            if offered.exists() and set(CONTROLLERS) <= set(offered.read_text().split()):
                return Hierarchy(2, dict.fromkeys(CONTROLLERS, root))
    roots: dict[str, Path] = {}
    for controller in CONTROLLERS:
        for kind, mount_root, point, options in mounts:
            if kind == "cgroup" and controller in options and controller in paths:
                roots[controller] = place(mount_root, point, paths[controller])
                break
    if len(roots) < len(CONTROLLERS):
        raise CgroupError("no cgroup hierarchy with the cpu and memory controllers (neither "
                          "v2's unified one offering them nor v1's cpu and memory mounts)")
    return Hierarchy(1, roots)


@functools.cache
def _found() -> Hierarchy | CgroupError:
    try:
        if os.geteuid() != 0:
            raise CgroupError("making cgroups needs root")
        hierarchy = detect()
        hierarchy.prepare()
        return hierarchy
    except CgroupError as exc:
        return exc
    except OSError as exc:  # /proc/self/mountinfo or a cgroup.controllers unreadable
        return CgroupError(f"cannot read the cgroup mounts: {exc}")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def system() -> Hierarchy | None:
    """This machine's hierarchy, ready for containers' cgroups. Where there is none, the
    first call says so on stderr and containers run without limits, except under CI=true,
    where that is a CgroupError: the e2e tier must run the manifests' real budgets."""
    found = _found()
    if isinstance(found, Hierarchy):
        return found
    if in_ci():
        raise CgroupError(f"containers' limits cannot be played: {found}")
    _warn_once(str(found))
    return None


@functools.cache
def _warn_once(reason: str) -> None:
    print(f"player: containers run without their CPU and memory limits: {reason}",
          file=sys.stderr, flush=True)
