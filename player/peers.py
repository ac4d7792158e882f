"""Where the pinned peer binaries are: versions from scripts/peers.env, builds in the cache."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

CACHE = Path(os.environ.get("STS_AGENT_CACHE")
             or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sts-agent")
ROOT = Path(__file__).resolve().parents[1]
PEERS_ENV = ROOT / "scripts" / "peers.env"
CHECKER_SOURCES = ROOT / "checker"


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
    return _built(CACHE / "bin" / f"{program}-{pinned(version_key)}")


def checker_binary() -> str:
    """The linearizability checker (checker/ on Porcupine), built by scripts/build_peers.sh
    as ``porcupine-checker-<pinned version>-<digest of its sources>``: an edited checker is
    a binary not built yet, never a stale one."""
    names = ["go.mod", "go.sum", *sorted(p.name for p in CHECKER_SOURCES.glob("*.go"))]
    digest = hashlib.sha256(b"".join((CHECKER_SOURCES / name).read_bytes()
                                     for name in names)).hexdigest()[:12]
    return _built(CACHE / "bin"
                  / f"porcupine-checker-{pinned('PORCUPINE_VERSION')}-{digest}")


def _built(path: Path) -> str:
    if not path.exists():
        raise MissingBinary(f"{path} not built (scripts/build_peers.sh)")
    return str(path)


def installed_binary(program: str, package: str) -> str:
    """A program on PATH, from a Debian package that scripts/setup.sh installs."""
    found = shutil.which(program)
    if not found:
        raise MissingBinary(f"{program} not found (Debian package {package})")
    return found


def agent_binary(tag: str = "") -> str:
    """This checkout's sts-agent, whatever the image's tag."""
    return str(Path(sys.executable).with_name("sts-agent"))


def mariadbd_binary(tag: str = "") -> str:
    """Debian's mariadbd with galera-4 (the image's tag is not read: Debian's 10.11 is
    played)."""
    installed_binary("mariadb-install-db", "mariadb-server")
    if not Path("/usr/lib/galera/libgalera_smm.so").exists():
        installed_binary("libgalera_smm.so", "galera-4")
    return installed_binary("mariadbd", "mariadb-server")
