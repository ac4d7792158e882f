"""A stand-in for the few Kubernetes API calls the agent makes, in the real API's JSON shapes."""

from __future__ import annotations

import asyncio
import copy
import json
import ssl
import subprocess
import threading
import uuid
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
        self.available = True
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="kubeapi")

    # --- control ------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"{'https' if self._ssl else 'http'}://{self.host}:{self.port}"

    def rotate_token(self) -> str:
        """A new service-account token: the old one gets 401 from now on."""
        self.token = uuid.uuid4().hex
        self.token_file.write_text(self.token)
        return self.token

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

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        app = web.Application()
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
        if self._loop is not None and self._thread.is_alive():
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
