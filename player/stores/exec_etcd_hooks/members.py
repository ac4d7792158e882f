#!/usr/bin/env python3
"""The etcd members hook: this member's view as the agent's JSON (ids in hex, as etcdctl
prints them), from `etcdctl member list` and `etcdctl endpoint status`. Exit codes: 0
printed; 1 etcd did not answer (its error on stderr)."""

import json
import os
import subprocess
import sys
from typing import Any


def ctl(*args: str) -> Any:
    """etcdctl against this member, its JSON answer; exit 1 when it fails."""
    host = os.environ.get("HOOK_HOST") or os.environ["POD_IP"]
    url = f"http://{host}:{os.environ.get('HOOK_CLIENT_PORT', '2379')}"
    answer = subprocess.run(
        [os.environ.get("HOOK_ETCDCTL", "etcdctl"), f"--endpoints={url}", "--dial-timeout=2s",
         "--command-timeout=5s", "-w", "json", *args],
        capture_output=True, text=True, env={**os.environ, "ETCDCTL_API": "3"}, timeout=10,
        check=False)
    if answer.returncode != 0:
        sys.stderr.write(answer.stderr)
        sys.exit(1)
    return json.loads(answer.stdout)


def main() -> None:
    members = ctl("member", "list")["members"]
    (status,) = ctl("endpoint", "status")
    state = status["Status"]
    leader = state.get("leader", 0)
    print(json.dumps({
        "members": [{"id": f"{m['ID']:x}", "name": m.get("name") or f"{m['ID']:x}",
                     "address": (m.get("peerURLs") or [""])[0],
                     "voter": not m.get("isLearner", False)} for m in members],
        "leader": f"{leader:x}" if leader else None,
        "self": f"{state['header']['member_id']:x}",
        "applied_index": state.get("raftAppliedIndex", state["raftIndex"]),
        "commit_index": state["raftIndex"],
        "version": state.get("version"),
    }))


if __name__ == "__main__":
    main()
