"""Which local program plays each container image: the player's documented image mapping.

| image (any tag) | ENTRYPOINT | executables |
|---|---|---|
| `sts-agent` (our Dockerfile) | `sts-agent` | `sts-agent`: this checkout's `.venv/bin/sts-agent` |
| `sts-agent-galera` (target galera-init) | `sts-agent` | the same, Debian's `mariadbd` beside it |
| `gcr.io/etcd-development/etcd` | `/usr/local/bin/etcd` | `etcd`: v3.4 Debian's, v3.5/v3.6 pinned |
| `rqlite/rqlite` | `docker-entrypoint.sh` | `rqlited`: the pinned build in the cache |
| `hashicorp/consul` | `docker-entrypoint.sh` | `consul`: the pinned build in the cache |
| `mariadb` | `docker-entrypoint.sh` | images/mariadb/docker-entrypoint.sh, Debian's `mariadbd` |
| `sts-agent-exec-galera` | `tini -- sts-agent` | Debian's `tini`, the agent, `mariadbd` |

Every executable of the image is also on the front of the container's PATH (a link to its
local program), so what the command or a hook runs by name is found as in the image.

A command naming anything else fails the pod's start with a clear error, as a missing
binary in an image would.
"""

from __future__ import annotations

import os
from pathlib import Path

from player.peers import agent_binary
from player.stores import store_images
from player.stores.base import Image

IMAGES: dict[str, Image] = {
    "sts-agent": Image(("sts-agent",), {"sts-agent": agent_binary}),
    **store_images(),  # each store's images (its harness module under player/stores/)
}


class ImageError(RuntimeError):
    """An image or an executable the player has no local program for."""


def repository(image: str) -> str:
    """``image`` without its tag or digest."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return name.rsplit(":", 1)[0] if ":" in last else name


def tag(image: str) -> str:
    """``image``'s tag, "" when it has none."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[1] if ":" in last else ""


def bin_dir(image: str, directory: Path) -> Path:
    """``directory`` holding a link to the local program of each executable ``image``
    has, for the front of the container's PATH: what a command or a hook inside the
    container runs by name (tini's child, a hook's mariadbd) is found as in the image."""
    found = IMAGES.get(repository(image))
    if found is None:
        raise ImageError(f"no local program plays image {image!r} (player/images.py)")
    directory.mkdir(parents=True, exist_ok=True)
    for name, program in found.binaries.items():
        link = directory / name
        target = program(tag(image))
        if not link.is_symlink() or os.readlink(link) != target:
            link.unlink(missing_ok=True)
            link.symlink_to(target)
    return directory


def argv(image: str, command: list[str] | None, args: list[str] | None) -> list[str]:
    """The local argv for a container: Kubernetes' command/args rules over the image's
    ENTRYPOINT, with the executable mapped to its local program."""
    found = IMAGES.get(repository(image))
    if found is None:
        raise ImageError(f"no local program plays image {image!r} (player/images.py)")
    words = list(command) if command else list(found.entrypoint)
    words += list(args or [])
    program = found.binaries.get(Path(words[0]).name)
    if program is None:
        raise ImageError(f"image {image!r} has no {words[0]!r} in the player's mapping")
    return [program(tag(image)), *words[1:]]
