"""A stand-in for the few Kubernetes API calls the agent makes, in the real API's JSON shapes."""

from __future__ import annotations

import asyncio
import copy
import http
import json
import os
import ssl
import subprocess
import threading
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from player.dns import free_port

# What the agent's Role grants (k8s/ manifests say the same): anything else is denied.
GRANTED = {("get", "statefulsets"), ("create", "events")}


def status_body(code: int, reason: str, message: str) -> dict[str, Any]:
    """A metav1.Status, as the API server answers errors."""
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


@dataclass(frozen=True, slots=True)
class Fault:
    """How the stand-in mistreats a request, for fault-injection tests.

    It waits ``delay`` seconds before answering; then answers ``status`` (a
    metav1.Status, as the API server's own errors are) instead of the real answer when
    that is set; else sends the real answer's body ``chunk`` bytes at a time, ``trickle``
    seconds apart, when that is set. ``resource`` ("statefulsets", "events", ...) limits
    the fault to requests for that resource; None means any request.
    """

    delay: float = 0.0
    status: int | None = None
    trickle: float = 0.0
    chunk: int = 64
    resource: str | None = None


@dataclass
class _Injected:
    fault: Fault
    remaining: int | None  # None: until cleared


def resource_of(path: str) -> str | None:
    """The resource a request is for: ``statefulsets`` in
    /apis/apps/v1/namespaces/db/statefulsets/db."""
    parts = path.strip("/").split("/")
    if "namespaces" in parts:
        index = parts.index("namespaces") + 2
        return parts[index] if index < len(parts) else None
    return parts[-1] or None


@dataclass
class StatefulSetState:
    name: str
    namespace: str
    replicas: int
    service: str
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    generation: int = 1
    manifest: dict[str, Any] | None = None  # the applied object, when there is one

    def to_json(self) -> dict[str, Any]:
        if self.manifest is not None:
            body = copy.deepcopy(self.manifest)
            body["metadata"].update({"namespace": self.namespace, "uid": self.uid,
                                     "resourceVersion": str(self.generation),
                                     "generation": self.generation})
            body["spec"]["replicas"] = self.replicas
            body["status"] = {"replicas": self.replicas, "observedGeneration": self.generation}
            return body
        labels = {"app": self.name}
        return {
            "kind": "StatefulSet", "apiVersion": "apps/v1",
            "metadata": {"name": self.name, "namespace": self.namespace, "uid": self.uid,
                         "resourceVersion": str(self.generation), "generation": self.generation,
                         "labels": labels},
            "spec": {"replicas": self.replicas, "serviceName": self.service,
                     "podManagementPolicy": "OrderedReady",
                     "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "store",
                                                           "image": "store"}]}}},
            "status": {"replicas": self.replicas, "observedGeneration": self.generation},
        }


class KubeApi:
    """Serves GET StatefulSet and POST Event with bearer-token auth, in a thread."""

    def __init__(self, workdir: Path, host: str = "127.0.0.1", *, tls: bool = False,
                 granted: set[tuple[str, str]] | None = None) -> None:
        self.host = host
        self.granted = GRANTED if granted is None else granted
        self.services: dict[tuple[str, str], dict[str, Any]] = {}
        self.leases: dict[tuple[str, str], dict[str, Any]] = {}
        self.ca_file: Path | None = None
        self._ssl: ssl.SSLContext | None = None
        if tls:
            workdir.mkdir(parents=True, exist_ok=True)
            self.ca_file, self._ssl = self_signed(workdir, host)
        self.token_file = workdir / "token"
        self.token_file.parent.mkdir(parents=True, exist_ok=True)
        self.rotate_token()
        self.statefulsets: dict[tuple[str, str], StatefulSetState] = {}
        self.events: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str, int]] = []
        # Every request as it arrives, answered or not (one a client gave up on included).
        self.received: list[tuple[str, str]] = []
        self.available = True
        # Content-Type "application/json" without "; charset=utf-8", byte for byte as
        # kube-apiserver sends it (lightkube raises its ApiError only for that type).
        self.exact_json_type = False
        self._faults: list[_Injected] = []
        self._faults_lock = threading.Lock()
        self._delayed: set[asyncio.Task[Any]] = set()
        self._token_writers: list[threading.Timer] = []
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="kubeapi")

    # --- control ------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"{'https' if self._ssl else 'http'}://{self.host}:{self.port}"

    def rotate_token(self, *, file_lag: float | None = 0.0) -> str:
        """A new service-account token: the old one gets 401 from now on.

        ``file_lag``: seconds until the token file holds the new token (as the kubelet
        writes a projected token); None: the file keeps the old token until
        ``write_token_file()``.
        """
        self.token = token = uuid.uuid4().hex
        if file_lag == 0.0:
            self._write_token(token)
        elif file_lag is not None:
            writer = threading.Timer(file_lag, self._write_token, args=(token,))
            writer.daemon = True
            self._token_writers.append(writer)
            writer.start()
        return token

    def write_token_file(self) -> None:
        """Bring the token file up to the current token (a late kubelet)."""
        self._write_token(self.token)

    def _write_token(self, token: str) -> None:
        # Atomically, as the kubelet swaps a projected volume's files: never half written.
        partial = self.token_file.with_name(f".{self.token_file.name}.partial")
        partial.write_text(token)
        os.replace(partial, self.token_file)

    def inject(self, fault: Fault, *, times: int | None = None) -> None:
        """Apply ``fault`` to the next ``times`` matching requests (None: every one until
        ``clear_faults()``). Faults queue: the earliest one still applying wins."""
        if times is not None and times < 1:
            raise ValueError(f"times must be at least 1, not {times}")
        with self._faults_lock:
            self._faults.append(_Injected(fault, times))

    def clear_faults(self) -> None:
        with self._faults_lock:
            self._faults.clear()

    def received_for(self, resource: str) -> int:
        """How many requests for ``resource`` arrived so far."""
        return sum(1 for _, path in list(self.received) if resource_of(path) == resource)

    def add_statefulset(self, name: str, *, replicas: int, namespace: str = "default",
                        service: str | None = None,
                        manifest: dict[str, Any] | None = None) -> None:
        self.statefulsets[(namespace, name)] = StatefulSetState(
            name, namespace, replicas, service or name, manifest=manifest)

    def add_service(self, manifest: dict[str, Any], namespace: str = "default") -> None:
        self.services[(namespace, manifest["metadata"]["name"])] = manifest

    def scale(self, name: str, replicas: int, namespace: str = "default") -> None:
        state = self.statefulsets[(namespace, name)]
        state.replicas = replicas
        state.generation += 1

    def event_reasons(self) -> list[str]:
        return [str(e.get("reason")) for e in self.events]

    # --- serving ------------------------------------------------------------------------
    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.token}"

    def _deny(self, request: web.Request, verb: str, resource: str) -> web.Response | None:
        if not self.available:
            return web.json_response(status_body(503, "ServiceUnavailable", "unavailable"),
                                     status=503)
        if not self._authorized(request):
            return web.json_response(status_body(401, "Unauthorized", "Unauthorized"),
                                     status=401)
        if (verb, resource) not in self.granted:
            return web.json_response(status_body(
                403, "Forbidden", f'{resource} is forbidden: cannot {verb} resource '
                                  f'"{resource}"'), status=403)
        return None

    async def _get_statefulset(self, request: web.Request) -> web.Response:
        denied = self._deny(request, "get", "statefulsets")
        if denied is not None:
            return self._log(request, denied)
        key = (request.match_info["namespace"], request.match_info["name"])
        state = self.statefulsets.get(key)
        if state is None:
            return self._log(request, web.json_response(status_body(
                404, "NotFound", f'statefulsets.apps "{key[1]}" not found'), status=404))
        return self._log(request, web.json_response(state.to_json()))

    async def _get_service(self, request: web.Request) -> web.Response:
        denied = self._deny(request, "get", "services")
        if denied is not None:
            return self._log(request, denied)
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        found = self.services.get((namespace, name))
        if found is None:
            return self._log(request, web.json_response(status_body(
                404, "NotFound", f'services "{name}" not found'), status=404))
        body = copy.deepcopy(found)
        body["metadata"]["namespace"] = namespace
        return self._log(request, web.json_response(body))

    async def _lease(self, request: web.Request) -> web.Response:
        """Lease get/create/update with resourceVersion conflicts, as the API does them."""
        verb = {"GET": "get", "POST": "create", "PUT": "update"}[request.method]
        denied = self._deny(request, verb, "leases")
        if denied is not None:
            return self._log(request, denied)
        namespace = request.match_info["namespace"]
        name = request.match_info.get("name", "")
        if request.method == "GET":
            found = self.leases.get((namespace, name))
            if found is None:
                return self._log(request, web.json_response(status_body(
                    404, "NotFound", f'leases.coordination.k8s.io "{name}" not found'),
                    status=404))
            return self._log(request, web.json_response(found))
        body = await request.json()
        metadata = body.setdefault("metadata", {})
        key = (namespace, metadata.get("name") or name)
        current = self.leases.get(key)
        if request.method == "POST" and current is not None:
            return self._log(request, web.json_response(status_body(
                409, "AlreadyExists", f'leases.coordination.k8s.io "{key[1]}" already '
                                      'exists'), status=409))
        if request.method == "PUT" and (current is None or metadata.get("resourceVersion")
                                        != current["metadata"]["resourceVersion"]):
            return self._log(request, web.json_response(status_body(
                409, "Conflict", "the object has been modified; please apply your changes "
                                 "to the latest version and try again"), status=409))
        version = int(current["metadata"]["resourceVersion"]) + 1 if current else 1
        metadata.update({"namespace": namespace, "resourceVersion": str(version)})
        body.update({"kind": "Lease", "apiVersion": "coordination.k8s.io/v1"})
        self.leases[key] = body
        return self._log(request, web.json_response(body, status=201 if current is None
                                                     else 200))

    async def _create_event(self, request: web.Request) -> web.Response:
        denied = self._deny(request, "create", "events")
        if denied is not None:
            return self._log(request, denied)
        body = await request.json()
        metadata = body.setdefault("metadata", {})
        metadata.setdefault("name", metadata.get("generateName", "event.") + uuid.uuid4().hex[:8])
        metadata["namespace"] = request.match_info["namespace"]
        metadata["uid"] = str(uuid.uuid4())
        metadata["resourceVersion"] = str(len(self.events) + 1)
        body.setdefault("kind", "Event")
        body.setdefault("apiVersion", "v1")
        self.events.append(body)
        return self._log(request, web.json_response(body, status=201))

    async def _other(self, request: web.Request) -> web.Response:
        denied = self._deny(request, request.method.lower(), request.path.rsplit("/", 1)[-1])
        return self._log(request, denied or web.json_response(
            status_body(404, "NotFound", "not found"), status=404))

    def _log(self, request: web.Request, response: web.Response) -> web.Response:
        self.requests.append((request.method, request.path, response.status))
        return response

    def _take_fault(self, path: str) -> Fault | None:
        resource = resource_of(path)
        with self._faults_lock:
            for injected in self._faults:
                if injected.fault.resource in (None, resource):
                    if injected.remaining is not None:
                        injected.remaining -= 1
                        if injected.remaining == 0:
                            self._faults.remove(injected)
                    return injected.fault
        return None

    @web.middleware
    async def _middleware(self, request: web.Request,
                          handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                          ) -> web.StreamResponse:
        self.received.append((request.method, request.path))
        fault = self._take_fault(request.path)
        if fault is not None and fault.delay > 0:
            task = asyncio.current_task()
            assert task is not None
            self._delayed.add(task)  # stop() cancels it rather than wait it out
            try:
                await asyncio.sleep(fault.delay)
            finally:
                self._delayed.discard(task)
        if fault is not None and fault.status is not None:
            phrase = http.HTTPStatus(fault.status).phrase
            headers = {"Retry-After": "1"} if fault.status == 429 else None
            response: web.StreamResponse = self._log(request, web.json_response(
                status_body(fault.status, phrase.replace(" ", ""), f"injected: {phrase}"),
                status=fault.status, headers=headers))
        else:
            response = await handler(request)
        if self.exact_json_type and response.content_type == "application/json":
            response.headers["Content-Type"] = "application/json"
        if fault is not None and fault.trickle > 0 and isinstance(response, web.Response):
            return await self._trickle(request, response, fault)
        return response

    async def _trickle(self, request: web.Request, response: web.Response,
                       fault: Fault) -> web.StreamResponse:
        """Send ``response`` with its headers at once and its body in pieces, slowly."""
        body = response.body
        assert isinstance(body, bytes)
        streamed = web.StreamResponse(status=response.status, headers=response.headers)
        streamed.content_length = len(body)
        await streamed.prepare(request)
        task = asyncio.current_task()
        assert task is not None
        self._delayed.add(task)
        try:
            for offset in range(0, len(body), fault.chunk):
                await streamed.write(body[offset:offset + fault.chunk])
                await asyncio.sleep(fault.trickle)
            await streamed.write_eof()
        except ConnectionResetError:
            pass  # the client gave up waiting: what the fault is for, not an error
        finally:
            self._delayed.discard(task)
        return streamed

    def _release_delayed(self) -> None:
        for task in list(self._delayed):
            task.cancel()

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get("/apis/apps/v1/namespaces/{namespace}/statefulsets/{name}",
                           self._get_statefulset)
        app.router.add_get("/api/v1/namespaces/{namespace}/services/{name}", self._get_service)
        app.router.add_post("/api/v1/namespaces/{namespace}/events", self._create_event)
        leases = "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        app.router.add_post(leases, self._lease)
        app.router.add_get(leases + "/{name}", self._lease)
        app.router.add_put(leases + "/{name}", self._lease)
        app.router.add_route("*", "/{tail:.*}", self._other)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        loop.run_until_complete(runner.setup())
        self.port = free_port(self.host)
        site = web.TCPSite(runner, self.host, self.port, ssl_context=self._ssl)
        loop.run_until_complete(site.start())
        self._runner = runner
        self._started.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    def start(self) -> KubeApi:
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("stand-in Kubernetes API did not start")
        return self

    def stop(self) -> None:
        for writer in self._token_writers:
            writer.cancel()
        if self._loop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._release_delayed)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def env(self) -> dict[str, str]:
        """What a sidecar needs to reach this API."""
        return {"AGENT_KUBE_API_URL": self.url, "AGENT_KUBE_TOKEN_FILE": str(self.token_file)}


def self_signed(workdir: Path, host: str) -> tuple[Path, ssl.SSLContext]:
    """A self-signed serving certificate for ``host`` (an IP): the pods' ca.crt."""
    cert, key = workdir / "apiserver.crt", workdir / "apiserver.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                    "-subj", "/CN=kubernetes", "-addext", f"subjectAltName=IP:{host}",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    return cert, context


def dump(api: KubeApi) -> str:
    return json.dumps({"events": api.events, "requests": api.requests}, indent=1)
