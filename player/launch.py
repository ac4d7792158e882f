"""Inside a pod's network namespace: bind the pod's volumes where the container expects
them (in a mount namespace of its own), then exec the container's command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    # `ip netns exec` already gave us a private mount namespace (/ is a slave of the
    # host's), so these binds are seen by this container only.
    for mount in spec["mounts"]:
        target = mount["target"]
        os.makedirs(target, exist_ok=True)
        subprocess.run(["mount", "--bind", mount["source"], target], check=True)
        if mount["read_only"]:
            subprocess.run(["mount", "-o", "remount,bind,ro", target], check=True)
    os.chdir(spec.get("working_dir") or "/")
    argv = spec["argv"]
    os.execve(argv[0], argv, spec["env"])


if __name__ == "__main__":
    main()
