"""The commands that ask the local sidecar over HTTP: status, and leave as a preStop hook.

Standard library only: a preStop hook must start fast under the agent's CPU limit.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request

from agent.addresses import host_port
from agent.config.settings import Settings


def local_url(settings: Settings) -> str:
    """The sidecar's base URL from this container: wildcard listens mean loopback."""
    host, port = settings.listen_address()
    if host == "0.0.0.0":
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://{host_port(host, port)}"


def status(settings: Settings) -> int:
    """``sts-agent status``: the local sidecar's /status on stdout."""
    url = f"{local_url(settings)}/status"
    try:
        with urllib.request.urlopen(url, timeout=settings.store_timeout_seconds) as response:
            sys.stdout.write(response.read().decode())
    except (urllib.error.URLError, OSError) as exc:
        print(f"sts-agent: cannot read {url}: {exc}", file=sys.stderr)
        return 1
    return 0


def leave(settings: Settings) -> int:
    """``sts-agent leave`` (a preStop hook): ask the local sidecar to leave; 0 removed,
    3 stayed, 1 failed."""
    url = f"{local_url(settings)}/leave"
    headers = {}
    if settings.leave_token_file is not None:
        try:
            token = settings.leave_token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            print(f"sts-agent: cannot read {settings.leave_token_file}: {exc.strerror}",
                  file=sys.stderr)
            return 1
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, method="POST", data=b"", headers=headers)
    timeout = settings.leave_deadline_seconds() + settings.leave_margin_seconds
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read().decode()
    except urllib.error.HTTPError as exc:
        body = exc.read().decode()
    except (urllib.error.URLError, OSError) as exc:
        print(f"sts-agent: cannot reach the sidecar at {url}: {exc}", file=sys.stderr)
        return 1
    print(body)
    try:
        result = json.loads(body).get("result")
    except ValueError:
        return 1
    return {"removed": 0, "stayed": 3}.get(result, 1)
