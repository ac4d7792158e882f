"""Init's decision handed to the sidecar: a file in the volume both containers mount."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from agent.atomic import write_atomically

PLAN = "sts-agent-plan.json"
TAKEN = "sts-agent-plan.taken.json"


def write_plan(directory: Path, plan: dict[str, Any]) -> Path:
    """Write ``plan`` atomically for the sidecar to take (the directory made if missing)."""
    directory.mkdir(parents=True, exist_ok=True)
    write_atomically(directory, PLAN, (json.dumps(plan, indent=2) + "\n").encode(),
                     mode=0o644)
    return directory / PLAN


def take_plan(directory: Path) -> dict[str, Any] | None:
    """The plan init wrote for this start, or None.

    Taking renames it: a sidecar that restarts (its container did, init did not run)
    finds no fresh plan and never seeds again from a stale vote."""
    path = directory / PLAN
    try:
        plan = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError:
        plan = None
    os.replace(path, directory / TAKEN)
    return plan if isinstance(plan, dict) else None
