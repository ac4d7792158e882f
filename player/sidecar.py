"""`sts-agent run` as a pod's sidecar process, and a client for its endpoints."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import httpx

from player.proc import Proc
from player.wait import wait_until


class NotReady(Exception):
    """/readyz answered, and not 200."""


def failing(body: Any) -> list[str]:
    """The failing checks' reasons of a /readyz body."""
    return [c["reason"] for c in body["checks"] if not c["ok"]]


class Sidecar:
    """One agent sidecar listening on ``ip:port`` and reading ``store_url``."""

    def __init__(self, workdir: Path, *, name: str, ip: str, store: str, store_url: str,
                 port: int = 9090, extra_env: dict[str, str] | None = None) -> None:
        self.name = name
        self.url = f"http://{ip}:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENT_", "POD_"))}
        env.update({
            "POD_NAME": name,
            "POD_NAMESPACE": "default",
            "AGENT_BACKEND": store,
            "AGENT_STORE_URL": store_url,
            "AGENT_LISTEN": f"{ip}:{port}",
            "AGENT_LOG_FORMAT": "json",
            "AGENT_POLL_INTERVAL_SECONDS": "0.2",
            "AGENT_STALE_AFTER_SECONDS": "1",
            "AGENT_STORE_TIMEOUT_SECONDS": "0.5",
        })
        env.update(extra_env or {})
        self.proc = Proc([sys.executable, "-m", "agent", "run"], workdir / f"{name}.agent.log",
                         env=env)
        self.http = httpx.Client(timeout=2.0)

    def start(self) -> None:
        self.proc.start()
        try:
            wait_until(lambda: self.livez()[0] == 200, what=f"{self.name} sidecar /livez",
                       timeout=20)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> int | None:
        code = self.proc.stop()
        self.http.close()
        return code

    def _get(self, path: str) -> tuple[int, Any]:
        response = self.http.get(self.url + path)
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, response.text

    def readyz(self) -> tuple[int, Any]:
        return self._get("/readyz")

    def livez(self) -> tuple[int, Any]:
        return self._get("/livez")

    def status(self) -> Any:
        return self._get("/status")[1]

    def metrics(self) -> str:
        return self.http.get(self.url + "/metrics").text

    def reasons(self) -> list[str]:
        _, body = self.readyz()
        return failing(body)

    def wait_ready(self, timeout: float = 30.0) -> None:
        def ready() -> bool:
            status, body = self.readyz()
            if status != 200:  # a timeout then names the last reasons, not just "False"
                try:
                    said: Any = failing(body)
                except (KeyError, TypeError):
                    said = body
                raise NotReady(f"/readyz {status}: {said}")
            return True

        wait_until(ready, what=f"{self.name} ready", timeout=timeout)

    def wait_reason(self, fragment: str, timeout: float = 30.0) -> list[str]:
        """Wait until /readyz is 503 with a reason containing ``fragment``."""
        def check() -> list[str] | None:
            status, _ = self.readyz()
            reasons = self.reasons()
            return reasons if status == 503 and any(fragment in r for r in reasons) else None
        return wait_until(check, what=f"{self.name} 503 with reason {fragment!r}",
                          timeout=timeout)
