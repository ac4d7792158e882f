"""A node's image store made once per content of the registry: containerd's root with every
image of `make images` pulled from the registry and unpacked, which each real node starts
from as a copy of hard links instead of pulling and unpacking every image again.

The kubelet still pulls ``Always`` from the node's own registry (player.registry): the
registry resolves each tag to its manifest, and containerd fetches and unpacks only what
its store lacks — nothing, when the tag still names what the store was made from. What is
linked is never written in place: content blobs are named by their digest, and a committed
snapshot is only ever a read-only lower layer of the containers' overlay mounts.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

from player.peers import CACHE
from player.registry import STORAGE, Registry, free_port, repository_path
from player.runtime import ARCHIVES, Containerd

STORES = CACHE / "node-images"
FORMAT = "1"  # bumped when what a store holds changes
# Never written in place: a blob is named by its digest; a committed snapshot is a
# read-only lower layer (an active one is a new directory of the node's own).
LINKED = ("io.containerd.content.v1.content/blobs",
          "io.containerd.snapshotter.v1.overlayfs/snapshots")
CRI = "io.containerd.grpc.v1.cri"  # not needed to pull: no pods where the store is made


def _reference(archive: Path) -> str:
    """The image name an OCI archive of `make images` was saved under (its index says)."""
    with tarfile.open(archive) as tar:
        index = tar.extractfile("index.json")
        assert index is not None
        return str(json.load(index)["manifests"][0]["annotations"]
                   ["org.opencontainers.image.ref.name"])


def served() -> list[tuple[str, str]]:
    """(name, manifest digest) of every image of `make images` the registry serves."""
    found = []
    for archive in sorted(ARCHIVES.glob("*.oci.tar")):
        name = _reference(archive)
        path, _, tag = repository_path(name).rpartition(":")
        link = (STORAGE / "docker/registry/v2/repositories" / path / "_manifests/tags" / tag
                / "current/link")
        if link.is_file():
            found.append((name, link.read_text().strip()))
    return found


def _key(images: list[tuple[str, str]]) -> str:
    version = subprocess.run(["containerd", "--version"], capture_output=True, text=True,
                             check=True).stdout.strip()
    return hashlib.sha256(json.dumps([FORMAT, version, images]).encode()).hexdigest()[:16]


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """Held while a store is made or removed: two test workers make it once."""
    STORES.mkdir(parents=True, exist_ok=True)
    with (STORES / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _make(images: list[tuple[str, str]], store: Path) -> None:
    """Pull every image of ``images`` into a new containerd root at ``store``."""
    work = store.with_name(f"{store.name}.partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    with Registry(work / "registry", "127.0.0.1", port=free_port()) as registry, \
            Containerd(work / "containerd", cri="", disabled=[CRI]) as runtime:
        hosts = work / "hosts"
        for host in {name.split("/", 1)[0] for name, _ in images}:
            (hosts / host).mkdir(parents=True, exist_ok=True)
            (hosts / host / "hosts.toml").write_text(
                f'[host."http://{registry.endpoint}"]\n  capabilities = ["pull", "resolve"]\n')
        for name, _ in images:
            runtime.ctr("images", "pull", "--hosts-dir", str(hosts), "--snapshotter",
                        "overlayfs", name)
    # The runtime's own UUID (introspection's): each node's containerd makes its own.
    shutil.rmtree(work / "containerd" / "root" / "io.containerd.grpc.v1.introspection")
    (work / "containerd" / "root").rename(store)
    shutil.rmtree(work)


def store() -> Path | None:
    """The containerd root holding what the registry serves now, made if it is not yet
    (the stores of other content removed); None when the registry serves nothing."""
    images = served()
    if not images:
        return None
    made = STORES / _key(images)
    if made.is_dir():
        return made
    with _locked():
        if not made.is_dir():
            started = time.monotonic()
            for other in STORES.iterdir():
                if other.is_dir():
                    shutil.rmtree(other, ignore_errors=True)
            _make(images, made)
            print(f"node images: {len(images)} images pulled into {made} in "
                  f"{time.monotonic() - started:.1f} s", flush=True)
    return made


def seed(root: Path) -> bool:
    """``root`` (a containerd root not made yet) a copy of the store: content blobs and
    snapshots as hard links, everything else (the bolt databases, written in place) copied;
    False, and nothing done, when there is no store to copy."""
    made = store()
    if made is None:
        return False
    root.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-al", str(made), str(root)], check=True, capture_output=True)
    for directory, subdirectories, files in os.walk(root):
        here = Path(directory)
        subdirectories[:] = [d for d in subdirectories
                             if str((here / d).relative_to(root)) not in LINKED]
        for name in files:
            linked = here / name
            if linked.is_symlink():
                continue
            copied = linked.with_name(f"{name}.copy")
            shutil.copy2(linked, copied)
            copied.replace(linked)  # a file of its own, no longer the store's inode
    return True
