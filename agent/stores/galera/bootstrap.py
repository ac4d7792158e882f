"""The bootstrap flag in the rendered config: dropped once another member joined, or added."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from agent.atomic import write_atomically

# What the dropped line becomes: the file says why the flag it had is gone.
DROPPED = ("# wsrep-new-cluster dropped by the sts-agent sidecar once another member had "
           "joined: a restart of mariadbd alone joins the Primary component; seeding again "
           "needs init's vote (a new pod)\n")


def is_new_cluster(line: str) -> bool:
    """Whether an option-file line sets ``wsrep-new-cluster`` (any spelling MariaDB
    reads: dashes or underscores, a ``loose-`` prefix, a value or none)."""
    return _name(line) == "wsrep_new_cluster"


def drop_new_cluster(directory: Path) -> list[str]:
    """Take ``wsrep-new-cluster`` out of every ``*.cnf`` init rendered in ``directory``
    (each file rewritten whole or not at all, its mode kept); the names of those changed."""
    def drop(text: str) -> str:
        lines = text.splitlines(keepends=True)
        return "".join(DROPPED if is_new_cluster(line) else line for line in lines)

    return _rewrite(directory, drop)


def _rewrite(directory: Path, change: Callable[[str], str]) -> list[str]:
    """Each ``*.cnf`` init rendered in ``directory`` (no symlink) rewritten whole to
    ``change(text)`` where that differs; the names of those changed."""
    if not directory.is_dir():  # not mounted in this container
        raise FileNotFoundError(f"{directory} is not a directory here")
    changed = []
    for path in sorted(directory.glob("*.cnf")):
        if path.is_symlink() or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        new = change(text)
        if new != text:
            write_atomically(directory, path.name, new.encode("utf-8"))
            changed.append(path.name)
    return changed


# The first line of what the sidecar adds to init's config: everything from it on is its.
ADDED = "# sts-agent sidecar: "


def add_restart_options(directory: Path, reason: str, *, seed_at: str | None = None
                        ) -> list[str]:
    """Add to every ``*.cnf`` init rendered in ``directory`` that names a Galera cluster
    address, after a first line saying ``reason`` (in a ``[mysqld]`` group of its own,
    the last word on each): ``pc.recovery=false`` appended to its provider options (the
    next mariadbd neither restores the saved view nor its group id, and joins a Primary
    component as a new member would), and with ``seed_at`` (a position)
    ``wsrep-new-cluster`` and that position as ``wsrep_start_position`` (a restored
    mariadbd left -1 in grastate.dat: a bootstrap from there would start a new
    history). Files already changed are left; the names of those changed."""
    def add(text: str) -> str:
        lines = text.splitlines()
        if (not any(_name(line) == "wsrep_cluster_address" for line in lines)
                or any(line.startswith(ADDED) for line in lines)):
            return text
        provider = [_value(line) for line in lines if _name(line) == "wsrep_provider_options"]
        options = ";".join(o for o in (provider[-1] if provider else "", "pc.recovery=false")
                           if o)
        block = [ADDED + " ".join(reason.split()), "[mysqld]",
                 f'wsrep_provider_options = "{options}"']
        if seed_at is not None:
            block += ["wsrep-new-cluster", f"wsrep_start_position = {seed_at}"]
        return f"{text}{'' if text.endswith(chr(10)) else chr(10)}" + "\n".join(block) + "\n"

    return _rewrite(directory, add)


def drop_restart_options(directory: Path) -> list[str]:
    """Take what ``add_restart_options`` added out of the ``*.cnf`` files again (a later
    start restores the view pc.recovery saves, and seeds only by init's vote)."""
    def drop(text: str) -> str:
        lines = text.splitlines(keepends=True)
        first = next((i for i, line in enumerate(lines) if line.startswith(ADDED)), None)
        return text if first is None else "".join(lines[:first])

    return _rewrite(directory, drop)


def _name(line: str) -> str:
    """The option an option-file line sets, in MariaDB's spelling ("" for none)."""
    text = line.strip()
    if not text or text[0] in "#;[!":
        return ""
    return text.split("=", 1)[0].strip().lower().replace("-", "_").removeprefix("loose_")


def _value(line: str) -> str:
    """The value an option-file line gives, without its quotes."""
    value = line.split("=", 1)[1].strip() if "=" in line else ""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    return value.strip().rstrip(";")
