"""The player's own calls to the real Kubernetes API: JSON over httpx with a client
certificate (the kubelet's, the admin's), including what lightkube does not offer a
kubelet: deletes with a UID precondition and raw status patches."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

JSON = dict[str, Any]


class ApiError(RuntimeError):
    """The API server refused a request; ``status`` is its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


def resource_path(api: str, resource: str, *, namespace: str | None = None,
                  name: str | None = None, subresource: str | None = None) -> str:
    """``/api/v1/namespaces/ns/pods/x/status`` from its parts (``api`` is "v1" or
    "group/version")."""
    path = "/api/v1" if api == "v1" else f"/apis/{api}"
    if namespace is not None:
        path += f"/namespaces/{namespace}"
    path += f"/{resource}"
    if name is not None:
        path += f"/{name}"
    if subresource is not None:
        path += f"/{subresource}"
    return path


class ApiClient:
    """One identity's client of the API server at ``server``."""

    def __init__(self, server: str, *, ca: Path, cert: Path | None = None,
                 key: Path | None = None, token: str | None = None,
                 timeout: float = 10.0) -> None:
        context = ssl.create_default_context(cafile=str(ca))
        if cert is not None and key is not None:
            context.load_cert_chain(str(cert), str(key))
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.server = server
        self.http = httpx.Client(base_url=server, verify=context, headers=headers,
                                 timeout=timeout, trust_env=False)

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, *, body: Any = None,
                params: dict[str, str] | None = None,
                content_type: str = "application/json") -> JSON:
        content = None if body is None else json.dumps(body).encode()
        response = self.http.request(method, path, content=content, params=params,
                                     headers={"Content-Type": content_type})
        if response.status_code >= 400:
            try:
                message = str(response.json().get("message", response.text))
            except ValueError:
                message = response.text[:300]
            raise ApiError(response.status_code, message)
        answer: JSON = response.json() if response.content else {}
        return answer

    def get(self, api: str, resource: str, name: str, *,
            namespace: str | None = None, subresource: str | None = None) -> JSON | None:
        """The object, or None when it does not exist."""
        try:
            return self.request("GET", resource_path(api, resource, namespace=namespace,
                                                     name=name, subresource=subresource))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, api: str, resource: str, *, namespace: str | None = None,
             labels: str | None = None, fields: str | None = None) -> JSON:
        params = {k: v for k, v in (("labelSelector", labels), ("fieldSelector", fields))
                  if v}
        return self.request("GET", resource_path(api, resource, namespace=namespace),
                            params=params)

    def create(self, api: str, resource: str, body: JSON, *, namespace: str | None = None,
               name: str | None = None, subresource: str | None = None) -> JSON:
        return self.request("POST", resource_path(api, resource, namespace=namespace,
                                                  name=name, subresource=subresource),
                            body=body)

    def patch(self, api: str, resource: str, name: str, body: Any, *,
              namespace: str | None = None, subresource: str | None = None,
              kind: str = "merge") -> JSON:
        """A merge (default), strategic or JSON patch."""
        content_type = {"merge": "application/merge-patch+json",
                        "strategic": "application/strategic-merge-patch+json",
                        "json": "application/json-patch+json"}[kind]
        return self.request("PATCH", resource_path(api, resource, namespace=namespace,
                                                   name=name, subresource=subresource),
                            body=body, content_type=content_type)

    def delete(self, api: str, resource: str, name: str, *, namespace: str | None = None,
               grace_seconds: int | None = None, uid: str | None = None,
               propagation: str | None = None) -> JSON | None:
        """Delete; None when it was gone already. ``uid`` makes it a precondition (the
        kubelet confirming one pod's termination, never its successor's)."""
        body: JSON = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if grace_seconds is not None:
            body["gracePeriodSeconds"] = grace_seconds
        if uid is not None:
            body["preconditions"] = {"uid": uid}
        if propagation is not None:
            body["propagationPolicy"] = propagation
        try:
            return self.request("DELETE", resource_path(api, resource, namespace=namespace,
                                                        name=name), body=body)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def watch(self, api: str, resource: str, *, namespace: str | None = None,
              fields: str | None = None, resource_version: str | None = None,
              timeout_seconds: int = 60) -> Iterator[tuple[str, JSON]]:
        """Events (type, object) of one watch request, until the server ends it."""
        params = {"watch": "1", "allowWatchBookmarks": "true",
                  "timeoutSeconds": str(timeout_seconds)}
        if fields:
            params["fieldSelector"] = fields
        if resource_version:
            params["resourceVersion"] = resource_version
        path = resource_path(api, resource, namespace=namespace)
        with self.http.stream("GET", path, params=params,
                              timeout=httpx.Timeout(10.0, read=timeout_seconds + 10)) as stream:
            if stream.status_code >= 400:
                stream.read()
                raise ApiError(stream.status_code, stream.text[:300])
            for line in stream.iter_lines():
                if line.strip():
                    event = json.loads(line)
                    yield str(event["type"]), event["object"]
