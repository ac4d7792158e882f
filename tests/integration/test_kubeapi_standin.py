"""The stand-in Kubernetes API the player serves: the real API's shapes, RBAC from a Role."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx

from player.kubeapi import KubeApi


def test_grants_leases_and_denies_the_rest(tmp_path: Path) -> None:
    api = KubeApi(tmp_path, tls=True, granted={("get", "leases"), ("create", "leases"),
                                               ("update", "leases")}).start()
    try:
        assert api.ca_file is not None
        trust = ssl.create_default_context(cafile=str(api.ca_file))
        with httpx.Client(base_url=api.url, verify=trust, headers={
                "Authorization": f"Bearer {api.token}"}) as http:
            leases = "/apis/coordination.k8s.io/v1/namespaces/db/leases"
            assert http.get(leases + "/lock").status_code == 404
            body = {"metadata": {"name": "lock"}, "spec": {"holderIdentity": "db-0"}}
            created = http.post(leases, json=body)
            assert created.status_code == 201
            assert http.post(leases, json=body).status_code == 409
            lease = http.get(leases + "/lock").json()
            lease["spec"]["holderIdentity"] = "db-1"
            assert http.put(leases + "/lock", json=lease).status_code == 200
            assert http.put(leases + "/lock", json=lease).status_code == 409  # stale version
            denied = http.get("/apis/apps/v1/namespaces/db/statefulsets/db")
            assert denied.status_code == 403 and denied.json()["reason"] == "Forbidden"
            assert http.get("/api/v1/namespaces/db/pods/db-0").status_code == 403
        with httpx.Client(base_url=api.url, verify=trust) as anonymous:
            assert anonymous.get(leases + "/lock").status_code == 401
    finally:
        api.stop()
