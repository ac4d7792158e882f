"""Where the pinned peer binaries are: versions from scripts/peers.env, builds in the cache."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

CACHE = Path(os.environ.get("STS_AGENT_CACHE")
             or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sts-agent")
PEERS_ENV = Path(__file__).resolve().parents[1] / "scripts" / "peers.env"


class MissingBinary(RuntimeError):
    """A store binary is not installed or not built."""


def pinned(name: str) -> str:
    """A version pinned in scripts/peers.env."""
    for line in PEERS_ENV.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == name:
            return value.strip()
    raise KeyError(name)


def cached_binary(program: str, version_key: str) -> str:
    """``<cache>/bin/<program>-<pinned version>``, built by scripts/build_peers.sh."""
    path = CACHE / "bin" / f"{program}-{pinned(version_key)}"
    if not path.exists():
        raise MissingBinary(f"{path} not built (scripts/build_peers.sh)")
    return str(path)


def installed_binary(program: str, package: str) -> str:
    """A program on PATH, from a Debian package that scripts/setup.sh installs."""
    found = shutil.which(program)
    if not found:
        raise MissingBinary(f"{program} not found (Debian package {package})")
    return found
