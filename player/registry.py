"""The image registry a real node pulls from: Debian's docker-registry (the distribution
project's registry) serving the images of `make images` from one storage directory.

No registry beyond this host is reachable, and the examples pull their images ``Always``
as production manifests do: a node's containerd resolves every registry host through its
own registry as a mirror, as an air-gapped cluster does. `make images` publishes into the
storage (writable); each node serves it read-only on its own address.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path
from types import TracebackType

import httpx
import yaml

from player.peers import CACHE, installed_binary
from player.wait import wait_until

STORAGE = CACHE / "registry"
PORT = 5000


def free_port() -> int:
    """A TCP port free on loopback now (a registry of its own, started next)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def repository_path(name: str) -> str:
    """Where image ``name`` (a full name: host/path:tag) lives in the registry: its path
    without the host, which the mirrored pull asks for (``docker.io/library/x:1`` →
    ``library/x:1``, ``gcr.io/etcd-development/etcd:v3.6.16`` → ``etcd-development/etcd:...``)."""
    host, _, path = name.partition("/")
    if not path or ("." not in host and ":" not in host and host != "localhost"):
        raise ValueError(f"{name!r} is not a full image name (host/path:tag)")
    return path


class Registry:
    """docker-registry on ``address:port`` over ``storage``, its config and log in
    ``workdir``; ``writable`` only for publishing."""

    def __init__(self, workdir: Path, address: str, *, port: int = PORT,
                 storage: Path = STORAGE, writable: bool = False) -> None:
        self.workdir = workdir
        self.address = address
        self.port = port
        self.storage = storage
        self.writable = writable
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"{self.address}:{self.port}"

    def start(self) -> Registry:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.storage.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "registry.yml"
        config.write_text(yaml.safe_dump({
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(self.storage)},
                        "maintenance": {"readonly": {"enabled": not self.writable},
                                        "uploadpurging": {"enabled": False}}},
            "http": {"addr": self.endpoint},
        }))
        log = (self.workdir / "registry.log").open("w")
        self.process = subprocess.Popen(
            [installed_binary("docker-registry", "docker-registry"), "serve", str(config)],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_until(self._answers, what=f"the registry answering on {self.endpoint}",
                   timeout=30, interval=0.1)
        return self

    def _answers(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"docker-registry exited {self.process.returncode}: "
                               f"{(self.workdir / 'registry.log').read_text()[-2000:]}")
        return httpx.get(f"http://{self.endpoint}/v2/", timeout=1.0,
                         trust_env=False).status_code == 200

    def tags(self, repository: str) -> list[str]:
        """The tags the registry serves for ``repository`` (a path without the host)."""
        answer = httpx.get(f"http://{self.endpoint}/v2/{repository}/tags/list", timeout=5.0,
                           trust_env=False)
        if answer.status_code == 404:
            return []
        answer.raise_for_status()
        return list(answer.json().get("tags") or [])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> Registry:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()
