"""Inside a pod's network namespace: join the container's cgroups, bind the pod's volumes
where the container expects them (in a mount namespace of its own), then exec the
container's command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def join_cgroups(fds: list[int]) -> None:
    """Move this process into the cgroups whose cgroup.procs the player opened for it
    (descriptors, since `ip netns exec` hides /sys/fs/cgroup); what it execs and forks
    from here on runs under the container's limits."""
    for fd in fds:
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    join_cgroups(spec.get("cgroup_fds", []))
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
