"""containerd on a private root, state and socket, running the images of `make images` as a
pod's containers: the OCI spec built from the container's securityContext and volumes."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from player.peers import CACHE
from player.wait import wait_until

ARCHIVES = CACHE / "images"
FULL_CAPABILITIES_OFF: dict[str, list[str]] = {
    key: [] for key in ("bounding", "effective", "permitted", "inheritable", "ambient")}


class ContainerdError(RuntimeError):
    """containerd or ctr failed; the message has its output."""


def full_name(image: str) -> str:
    """``image`` as containerd names it: docker.io/library/ for a bare name, :latest for none."""
    name = image.split("@", 1)[0]
    first = name.split("/", 1)[0]
    if "/" not in name:
        name = f"docker.io/library/{name}"
    elif "." not in first and ":" not in first and first != "localhost":
        name = f"docker.io/{name}"
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def archive(image: str) -> Path:
    """The OCI archive `make images` saved for ``image``."""
    return ARCHIVES / ("".join(c if c.isalnum() or c in ".-" else "_" for c in full_name(image))
                       + ".oci.tar")


def image_config(image: str) -> dict[str, Any]:
    """The image's config (Entrypoint, Cmd, Env, User, WorkingDir), read from its archive."""
    with tarfile.open(archive(image)) as tar:
        def blob(descriptor: dict[str, Any]) -> dict[str, Any]:
            algorithm, hexdigest = descriptor["digest"].split(":", 1)
            member = tar.extractfile(f"blobs/{algorithm}/{hexdigest}")
            assert member is not None
            loaded = json.load(member)
            assert isinstance(loaded, dict)
            return loaded
        index_file = tar.extractfile("index.json")
        assert index_file is not None
        manifest = blob(json.load(index_file)["manifests"][0])
        config = blob(manifest["config"]).get("config") or {}
        assert isinstance(config, dict)
        return config


@dataclass
class Container:
    """One container to run: what a pod's container says, the host paths behind its mounts."""

    name: str
    image: str
    command: list[str] | None = None
    args: list[str] | None = None
    env: dict[str, str] = field(default_factory=dict)
    user: tuple[int, int] | None = None  # runAsUser, runAsGroup (None: the image's)
    groups: tuple[int, ...] = ()  # fsGroup and supplementalGroups
    read_only_root: bool = True
    drop_all_capabilities: bool = True
    no_new_privileges: bool = True
    mounts: dict[str, tuple[Path, bool]] = field(default_factory=dict)  # path: (host, ro)
    hostname: str = "pod-0"
    hosts: dict[str, str] = field(default_factory=dict)  # /etc/hosts: name -> address
    netns: str | None = None  # the pod's network namespace (player.netns); None: the host's


def volume(path: Path, fs_group: int | None) -> Path:
    """A fresh writable volume as the kubelet gives it with ``fsGroup``: the group owns it,
    group-writable, setgid so what is made in it keeps the group."""
    path.mkdir(parents=True, exist_ok=True)
    if fs_group is not None:
        os.chown(path, 0, fs_group)
        path.chmod(0o2775)
    return path


def config_volume(path: Path, files: dict[str, str | bytes], fs_group: int | None,
                  mode: int = 0o644) -> Path:
    """A configMap or Secret volume: its keys as files, read-only to the container."""
    path.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        file = path / name
        file.write_bytes(content.encode() if isinstance(content, str) else content)
        file.chmod(mode)
        if fs_group is not None:
            os.chown(file, 0, fs_group)
    return path


class Containerd:
    """containerd with everything under ``workdir``; images imported on first use."""

    def __init__(self, workdir: Path, *, cri: str = "") -> None:
        # A unix socket path has 108 bytes at most: the socket lives in a short directory.
        self.workdir = workdir
        self.sockets = Path(tempfile.mkdtemp(prefix="ctrd-", dir="/tmp"))
        self.socket = self.sockets / "sock"
        # cri: the CRI plugin's TOML table (the kubelet's runtime, player.realnode), whose
        # images live in its namespace; without it only ctr's API serves.
        self.cri = cri
        self.namespace = "k8s.io" if cri else "sts-agent"
        self.process: subprocess.Popen[bytes] | None = None
        self.imported: set[str] = set()
        self.rootfs: list[Path] = []
        self._log: TextIO | None = None

    def __enter__(self) -> Containerd:
        config = self.workdir / "config.toml"
        self.workdir.mkdir(parents=True, exist_ok=True)
        config.write_text(
            "version = 2\n"
            f'root = "{self.workdir / "root"}"\nstate = "{self.sockets / "state"}"\n'
            + ('' if self.cri else 'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n')
            + f'[grpc]\n  address = "{self.socket}"\n'
            f'[ttrpc]\n  address = "{self.socket}.ttrpc"\n'
            '[debug]\n  address = ""\n[metrics]\n  address = ""\n'
            # /opt/containerd by default: shared by every containerd on the host.
            f'[plugins."io.containerd.internal.v1.opt"]\n  path = "{self.workdir / "opt"}"\n'
            + self.cri)
        self._log = (self.workdir / "containerd.log").open("w")
        self.process = subprocess.Popen(["containerd", "--config", str(config)],
                                        stdout=self._log, stderr=subprocess.STDOUT)
        wait_until(lambda: self._answers(), timeout=30.0, interval=0.1,
                   what=f"containerd answering on {self.socket}")
        return self

    def _answers(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise ContainerdError(f"containerd exited {self.process.returncode}: "
                                f"{(self.workdir / 'containerd.log').read_text()[-2000:]}")
        return self.socket.exists() and subprocess.run(
            self._ctr("version"), capture_output=True, check=False).returncode == 0

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for task in self.ctr("tasks", "ls", "-q", check=False).stdout.split():
            self.ctr("tasks", "delete", "--force", task, check=False)
        for container in self.ctr("containers", "ls", "-q", check=False).stdout.split():
            self.ctr("containers", "delete", container, check=False)
        for rootfs in self.rootfs:
            self.ctr("images", "unmount", "--rm", str(rootfs), check=False)
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()
        for parent in Path("/sys/fs/cgroup").glob(f"*/{self.sockets.name}"):
            with contextlib.suppress(OSError):  # runc removed the containers' own
                parent.rmdir()
        shutil.rmtree(self.sockets, ignore_errors=True)

    def _ctr(self, *args: str) -> list[str]:
        return ["ctr", "--address", str(self.socket), "--namespace", self.namespace, *args]

    def ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(self._ctr(*args), capture_output=True, text=True, check=False,
                                timeout=120)
        if check and result.returncode != 0:
            raise ContainerdError(f"ctr {' '.join(args)} exited {result.returncode}: "
                                f"{result.stderr.strip()}")
        return result

    def ensure_image(self, image: str) -> str:
        """``image`` imported from its archive (once); its full name."""
        name = full_name(image)
        if name not in self.imported:
            if not archive(image).is_file():
                raise ContainerdError(f"no archive for {name} at {archive(image)}: run make images")
            self.ctr("images", "import", str(archive(image)))
            self.imported.add(name)
        return name

    def spec(self, container: Container, rootfs: Path) -> dict[str, Any]:
        """The OCI runtime spec the kubelet's runtime would give ``container``."""
        config = image_config(container.image)
        spec: dict[str, Any] = json.loads(self.ctr("oci", "spec").stdout)
        entrypoint, cmd = config.get("Entrypoint") or [], config.get("Cmd") or []
        argv = (container.command or entrypoint) + (
            container.args if container.args is not None
            else ([] if container.command else cmd))
        env = dict(item.split("=", 1) for item in config.get("Env") or [])
        env.update({"HOSTNAME": container.hostname, **container.env})
        process = spec["process"]
        process["args"] = argv
        process["env"] = [f"{k}={v}" for k, v in env.items()]
        process["cwd"] = config.get("WorkingDir") or "/"
        process["terminal"] = False
        if container.user is not None:
            uid, gid = container.user
        else:
            user = str(config.get("User") or "0:0")
            uid, gid = (int(part) for part in [*user.split(":"), user][:2])
        process["user"] = {"uid": uid, "gid": gid, "additionalGids": [gid, *container.groups]}
        if container.drop_all_capabilities:
            process["capabilities"] = dict(FULL_CAPABILITIES_OFF)
        process["noNewPrivileges"] = container.no_new_privileges
        spec["root"] = {"path": str(rootfs), "readonly": container.read_only_root}
        spec["hostname"] = container.hostname
        namespaces = [n for n in spec["linux"]["namespaces"] if n["type"] != "network"]
        if container.netns is not None:
            namespaces.append({"type": "network", "path": f"/var/run/netns/{container.netns}"})
        spec["linux"]["namespaces"] = namespaces
        # A cgroup per container, under this containerd's own parent (ctr's default spec
        # puts every container in one): its processes and memory are its own.
        spec["linux"]["cgroupsPath"] = f"/{self.sockets.name}/{container.name}"
        etc = self.workdir / "etc" / container.name
        etc.mkdir(parents=True, exist_ok=True)
        hosts = "127.0.0.1\tlocalhost\n" + "".join(
            f"{address}\t{name}\n" for name, address in container.hosts.items())
        (etc / "hosts").write_text(hosts)
        (etc / "hostname").write_text(container.hostname + "\n")
        mounts = {"/etc/hosts": (etc / "hosts", True), "/etc/hostname": (etc / "hostname", True),
                  **container.mounts}
        for destination, (source, read_only) in mounts.items():
            spec["mounts"].append({"destination": destination, "type": "bind",
                                   "source": str(source),
                                   "options": ["rbind", "ro" if read_only else "rw"]})
        return spec

    def start(self, container: Container, log: Path) -> subprocess.Popen[bytes]:
        """``container`` running (its output in ``log``) until it exits or is stopped."""
        name = self.ensure_image(container.image)
        rootfs = self.workdir / "rootfs" / container.name
        rootfs.mkdir(parents=True, exist_ok=True)
        self.ctr("images", "mount", "--rw", name, str(rootfs))
        self.rootfs.append(rootfs)
        spec_file = self.workdir / f"{container.name}.spec.json"
        spec_file.write_text(json.dumps(self.spec(container, rootfs), indent=1))
        with log.open("wb") as out:
            return subprocess.Popen(self._ctr("run", "--rm", "--config", str(spec_file),
                                              container.name), stdout=out, stderr=subprocess.STDOUT)

    def run(self, container: Container, timeout: float = 120.0) -> tuple[int, str]:
        """``container`` run to its end: (exit code, output)."""
        log = self.workdir / f"{container.name}.log"
        process = self.start(container, log)
        try:
            code = process.wait(timeout=timeout)
        finally:
            self.stop(container, process)
        return code, log.read_text(errors="replace")

    def stop(self, container: Container, process: subprocess.Popen[bytes],
             grace: float = 10.0, first: str = "SIGTERM") -> None:
        """``first`` (SIGTERM; SIGKILL is a crash), then SIGKILL after ``grace``, as the
        kubelet stops a container; its root filesystem unmounted."""
        if process.poll() is None:
            self.ctr("tasks", "kill", "-s", first, container.name, check=False)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.ctr("tasks", "kill", "-s", "SIGKILL", container.name, check=False)
                process.wait(timeout=30)
        rootfs = self.workdir / "rootfs" / container.name
        if rootfs in self.rootfs:
            self.ctr("images", "unmount", "--rm", str(rootfs), check=False)
            self.rootfs.remove(rootfs)
