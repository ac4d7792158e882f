"""containerd on a private root, state and socket with its CRI plugin (the real node's
runtime, player.realnode); the images of `make images` as their archives say them."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import IO, Any, TextIO

from player.peers import CACHE
from player.wait import wait_until

ARCHIVES = CACHE / "images"


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


def _manifest(tar: tarfile.TarFile) -> dict[str, Any]:
    """The image manifest of an OCI archive (its index's first)."""
    index_file = tar.extractfile("index.json")
    assert index_file is not None
    return _blob(tar, json.load(index_file)["manifests"][0])


def _blob(tar: tarfile.TarFile, descriptor: dict[str, Any]) -> dict[str, Any]:
    loaded = json.load(_blob_file(tar, descriptor))
    assert isinstance(loaded, dict)
    return loaded


def _blob_file(tar: tarfile.TarFile, descriptor: dict[str, Any]) -> IO[bytes]:
    algorithm, hexdigest = descriptor["digest"].split(":", 1)
    member = tar.extractfile(f"blobs/{algorithm}/{hexdigest}")
    assert member is not None
    return member


def image_config(image: str) -> dict[str, Any]:
    """The image's config (Entrypoint, Cmd, Env, User, WorkingDir), read from its archive."""
    with tarfile.open(archive(image)) as tar:
        config = _blob(tar, _manifest(tar)["config"]).get("config") or {}
        assert isinstance(config, dict)
        return config


def image_files(image: str, read: Collection[str] = ()) -> dict[str, bytes]:
    """Every path of the image's root filesystem (no leading slash), its layers applied in
    order with their whiteouts, read from its archive: the content of the regular files
    named in ``read``, ``b""`` for every other path."""
    files: dict[str, bytes] = {}
    with tarfile.open(archive(image)) as tar:
        for layer in _manifest(tar)["layers"]:
            with tarfile.open(fileobj=_blob_file(tar, layer), mode="r|*") as entries:
                for entry in entries:
                    path = os.path.normpath(entry.name).removeprefix("/")
                    directory, base = os.path.split(path)
                    if base == ".wh..wh..opq":  # the directory's lower content is gone
                        _remove_under(files, directory, keep_top=True)
                    elif base.startswith(".wh."):
                        _remove_under(files, os.path.join(directory, base[4:]))
                    elif path != ".":
                        content = b""
                        if path in read and entry.isfile():
                            member = entries.extractfile(entry)
                            content = member.read() if member is not None else b""
                        files[path] = content
    return files


def _remove_under(files: dict[str, bytes], path: str, *, keep_top: bool = False) -> None:
    for name in [n for n in files if n.startswith(f"{path}/") or (n == path and not keep_top)]:
        del files[name]


class Containerd:
    """containerd with everything under ``workdir`` (its socket and state in a short
    directory of /tmp), serving the CRI plugin ``cri`` configures."""

    def __init__(self, workdir: Path, *, cri: str, disabled: Sequence[str] = ()) -> None:
        # A unix socket path has 108 bytes at most: the socket lives in a short directory.
        self.workdir = workdir
        self.sockets = Path(tempfile.mkdtemp(prefix="ctrd-", dir="/tmp"))
        self.socket = self.sockets / "sock"
        # cri: the CRI plugin's TOML table (the kubelet's runtime, player.realnode), whose
        # containers and images live in its namespace.
        self.cri = cri
        self.disabled = list(disabled)  # plugins not loaded, by their ids
        self.namespace = "k8s.io"
        self.process: subprocess.Popen[bytes] | None = None
        self._log: TextIO | None = None

    @property
    def root(self) -> Path:
        """containerd's persistent root: content, metadata, snapshots."""
        return self.workdir / "root"

    def __enter__(self) -> Containerd:
        config = self.workdir / "config.toml"
        self.workdir.mkdir(parents=True, exist_ok=True)
        config.write_text(
            "version = 2\n"
            f"disabled_plugins = {json.dumps(self.disabled)}\n"
            f'root = "{self.root}"\nstate = "{self.sockets / "state"}"\n'
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
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()
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
