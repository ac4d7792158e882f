"""The vote's bootstrap flag, dropped from the rendered config once another member has joined."""

from __future__ import annotations

from pathlib import Path

from agent.atomic import write_atomically

# What the dropped line becomes: the file says why the flag it had is gone.
DROPPED = ("# wsrep-new-cluster dropped by the sts-agent sidecar once another member had "
           "joined: a restart of mariadbd alone joins the Primary component; seeding again "
           "needs init's vote (a new pod)\n")


def is_new_cluster(line: str) -> bool:
    """Whether an option-file line sets ``wsrep-new-cluster`` (any spelling MariaDB
    reads: dashes or underscores, a ``loose-`` prefix, a value or none)."""
    text = line.strip()
    if not text or text[0] in "#;[!":
        return False
    name = text.split("=", 1)[0].strip().lower().replace("-", "_")
    return name.removeprefix("loose_") == "wsrep_new_cluster"


def drop_new_cluster(directory: Path) -> list[str]:
    """Take ``wsrep-new-cluster`` out of every ``*.cnf`` init rendered in ``directory``
    (each file rewritten whole or not at all, its mode kept); the names of those changed."""
    if not directory.is_dir():  # not mounted in this container
        raise FileNotFoundError(f"{directory} is not a directory here")
    changed = []
    for path in sorted(directory.glob("*.cnf")):
        if path.is_symlink() or not path.is_file():
            continue
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = [DROPPED if is_new_cluster(line) else line for line in lines]
        if kept != lines:
            write_atomically(directory, path.name, "".join(kept).encode("utf-8"))
            changed.append(path.name)
    return changed
