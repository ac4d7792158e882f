"""A counting HTTP proxy in front of a store: proves probes cause no store requests, and
plays a failing store (5xx, garbage, truncated bodies, slow answers) on demand."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx


class QuietServer(ThreadingHTTPServer):
    """A client hanging up on a slow or spoiled answer is part of the play, not an error."""

    def handle_error(self, request: object, client_address: object) -> None:
        pass


class CountingProxy:
    """Forwards every request to ``target`` and counts them; ``fault`` (None, "500",
    "garbage", "truncated", "slow") spoils the answers while it is set."""

    SLOW_SECONDS = 3.0

    def __init__(self, target: str, host: str = "127.0.0.1") -> None:
        self.target = target.rstrip("/")
        self.count = 0
        self.fault: str | None = None
        self._lock = threading.Lock()
        # One client for every forward (building one loads the system CAs: 30 ms of CPU,
        # for each of the sidecars' polls), a new connection for each as before.
        self.http = httpx.Client(timeout=5,
                                 limits=httpx.Limits(max_keepalive_connections=0))
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                with proxy._lock:
                    proxy.count += 1
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                fault = proxy.fault
                if fault == "500":
                    self._answer(500, b"internal error")
                    return
                if fault == "garbage":
                    self._answer(200, b"\x00{not json")
                    return
                if fault == "slow":
                    time.sleep(proxy.SLOW_SECONDS)  # longer than the agent's store timeout
                try:
                    response = proxy.http.request(
                        self.command, proxy.target + self.path, content=body,
                        headers={"Content-Type": self.headers.get("Content-Type",
                                                                  "application/json")})
                except httpx.HTTPError:
                    self.send_error(502)
                    return
                if fault == "truncated":  # promises the whole body, sends half, hangs up
                    self.send_response(response.status_code)
                    self.send_header("Content-Length", str(len(response.content)))
                    self.end_headers()
                    self.wfile.write(response.content[: len(response.content) // 2])
                    self.close_connection = True
                    return
                self._answer(response.status_code, response.content,
                             response.headers.get("Content-Type", ""))

            def _answer(self, status: int, body: bytes,
                        content_type: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _forward

            def log_message(self, fmt: str, *args: object) -> None:
                pass

        self.server = QuietServer((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> CountingProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.http.close()
