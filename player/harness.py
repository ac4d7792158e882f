"""One interface over a real etcd or rqlite cluster plus a sidecar per node (tests, benchmarks)."""

from __future__ import annotations

import base64
import concurrent.futures
from pathlib import Path
from typing import Any

import httpx

from player.sidecar import Sidecar
from player.stores import ConsulCluster, EtcdCluster, RqliteCluster


class Harness:
    """A store cluster with one `sts-agent run` sidecar per node (same loopback address)."""

    backend: str

    def __init__(self, workdir: Path, *, election_seconds: float = 1.0,
                 sidecar_env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.sidecars: dict[int, Sidecar] = {}
        self.sidecar_env = dict(sidecar_env or {})
        self.election_seconds = election_seconds

    # store-specific -------------------------------------------------------------------
    def store_cluster(self) -> EtcdCluster | RqliteCluster | ConsulCluster:
        raise NotImplementedError

    def store_url(self, ordinal: int) -> str:
        raise NotImplementedError

    def start_store(self, count: int) -> None:
        self.store_cluster().start(count)

    def add_store(self, ordinal: int) -> None:
        self.store_cluster().add(ordinal)

    def ip(self, ordinal: int) -> str:
        return self.store_cluster().ip(ordinal)

    def leader(self) -> int:
        """Ordinal of the current leader, waiting for one."""
        return self.store_cluster().wait_leader()

    def remove_through_store(self, ordinal: int) -> None:
        raise NotImplementedError

    def write_entries(self, count: int, *, size: int = 100) -> None:
        raise NotImplementedError

    def put(self, key: str, value: str) -> bool:
        """One acknowledged write through any running node; False when none took it."""
        raise NotImplementedError

    def read_all(self) -> dict[str, str]:
        """Every key written with ``put``, read back through the leader."""
        raise NotImplementedError

    def read_local(self, ordinal: int, key: str) -> str | None:
        """``key`` as written with ``put``, from node ``ordinal``'s own copy (no leader)."""
        raise NotImplementedError

    def running(self) -> list[int]:
        return [o for o, n in sorted(self.store_cluster().nodes.items()) if n.running]

    def stop_store(self, ordinal: int) -> None:
        proc = self.store_cluster().nodes[ordinal].proc
        assert proc is not None
        proc.stop()

    def kill_store(self, ordinal: int) -> None:
        proc = self.store_cluster().nodes[ordinal].proc
        assert proc is not None
        proc.kill()

    def restart_store(self, ordinal: int) -> None:
        self.store_cluster().restart(ordinal)

    def close_store(self) -> None:
        self.store_cluster().stop_all()

    # shared -----------------------------------------------------------------------------
    def start_sidecar(self, ordinal: int, *, store_url: str | None = None, port: int = 9090,
                      name: str | None = None, env: dict[str, str] | None = None) -> Sidecar:
        sidecar = Sidecar(self.workdir, name=name or f"{self.backend}-{ordinal}",
                          ip=self.ip(ordinal), port=port, backend=self.backend,
                          store_url=store_url or self.store_url(ordinal),
                          extra_env={**self.sidecar_env, **(env or {})})
        sidecar.start()
        self.sidecars[ordinal if name is None else 1000 + len(self.sidecars)] = sidecar
        return sidecar

    def start(self, count: int) -> None:
        self.start_store(count)
        for ordinal in range(count):
            self.start_sidecar(ordinal)

    def close(self) -> None:
        for sidecar in self.sidecars.values():
            sidecar.stop()
        self.close_store()

    def logs(self) -> str:
        parts = []
        for path in sorted(self.workdir.rglob("*.log")):
            lines = path.read_text(errors="replace").splitlines()[-15:]
            parts.append(f"--- {path.name}\n" + "\n".join(lines))
        return "\n".join(parts)


class EtcdHarness(Harness):
    backend = "etcd"

    def __init__(self, workdir: Path, **kwargs: Any) -> None:
        super().__init__(workdir, **kwargs)
        election_ms = int(self.election_seconds * 1000)
        self.cluster = EtcdCluster(workdir / "stores", election_ms=election_ms,
                                   heartbeat_ms=max(50, election_ms // 10))
        self._http = httpx.Client(timeout=5)

    def store_cluster(self) -> EtcdCluster | RqliteCluster | ConsulCluster:
        return self.cluster

    def store_url(self, ordinal: int) -> str:
        return self.cluster.client_url(ordinal)

    def remove_through_store(self, ordinal: int) -> None:
        self.cluster.remove(self.cluster.member_ids()[f"etcd-{ordinal}"])

    def put(self, key: str, value: str) -> bool:
        body = {"key": base64.b64encode(key.encode()).decode(),
                "value": base64.b64encode(value.encode()).decode()}
        for ordinal in self.running():
            try:
                response = self._http.post(self.cluster.client_url(ordinal) + "/v3/kv/put",
                                           json=body)
            except httpx.HTTPError:
                continue
            if response.status_code == 200:
                return True
        return False

    def read_all(self) -> dict[str, str]:
        url = self.cluster.client_url(self.leader())
        start = base64.b64encode(b"w/").decode()
        end = base64.b64encode(b"w0").decode()  # "/" + 1: the whole w/ prefix
        answer = self._http.post(url + "/v3/kv/range",
                                 json={"key": start, "range_end": end}).json()
        return {base64.b64decode(kv["key"]).decode(): base64.b64decode(kv["value"]).decode()
                for kv in answer.get("kvs", [])}

    def read_local(self, ordinal: int, key: str) -> str | None:
        body = {"key": base64.b64encode(key.encode()).decode(), "serializable": True}
        answer = self._http.post(self.cluster.client_url(ordinal) + "/v3/kv/range",
                                 json=body).json()
        kvs = answer.get("kvs") or []
        return base64.b64decode(kvs[0]["value"]).decode() if kvs else None

    def write_entries(self, count: int, *, size: int = 100) -> None:
        url = self.cluster.client_url(self.leader())
        value = base64.b64encode(b"x" * size).decode()

        def writer(start: int) -> None:
            with httpx.Client(timeout=10) as client:
                for i in range(start, min(count, start + 250)):
                    key = base64.b64encode(f"key-{i}".encode()).decode()
                    client.post(url + "/v3/kv/put", json={"key": key, "value": value}
                                ).raise_for_status()

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(writer, range(0, count, 250)))


class RqliteHarness(Harness):
    backend = "rqlite"

    def __init__(self, workdir: Path, **kwargs: Any) -> None:
        super().__init__(workdir, **kwargs)
        self.cluster = RqliteCluster(workdir / "stores",
                                     election_timeout=f"{int(self.election_seconds * 1000)}ms")
        self._table = False
        self._kv = False
        self._http = httpx.Client(timeout=5, follow_redirects=True)

    def put(self, key: str, value: str) -> bool:
        statements: list[object] = [["INSERT OR REPLACE INTO kv(k, v) VALUES(?, ?)", key, value]]
        if not self._kv:
            statements.insert(0, "CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT)")
        for ordinal in self.running():
            try:
                response = self._http.post(self.cluster.api_url(ordinal) + "/db/execute",
                                           json=statements)
            except httpx.HTTPError:
                continue
            results = response.json().get("results", []) if response.status_code == 200 else []
            if results and not any("error" in r for r in results):
                self._kv = True
                return True
        return False

    def read_all(self) -> dict[str, str]:
        url = self.cluster.api_url(self.leader())
        answer = self._http.post(url + "/db/query?level=strong",
                                 json=["SELECT k, v FROM kv"]).json()
        values = answer["results"][0].get("values") or []
        return {str(k): str(v) for k, v in values}

    def read_local(self, ordinal: int, key: str) -> str | None:
        answer = self._http.post(self.cluster.api_url(ordinal) + "/db/query?level=none",
                                 json=[["SELECT v FROM kv WHERE k = ?", key]]).json()
        values = answer["results"][0].get("values") or []
        return str(values[0][0]) if values else None

    def store_cluster(self) -> EtcdCluster | RqliteCluster | ConsulCluster:
        return self.cluster

    def store_url(self, ordinal: int) -> str:
        return self.cluster.api_url(ordinal)

    def remove_through_store(self, ordinal: int) -> None:
        self.cluster.remove(self.cluster.node_id(ordinal))

    def write_entries(self, count: int, *, size: int = 100) -> None:
        if not self._table:
            self.cluster.execute(["CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)"])
            self._table = True
        url = self.cluster.api_url(self.leader())
        value = "x" * size

        def writer(start: int) -> None:
            with httpx.Client(timeout=10) as client:
                for _ in range(start, min(count, start + 250)):
                    client.post(url + "/db/execute", json=[["INSERT INTO t(v) VALUES(?)", value]]
                                ).raise_for_status()

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(writer, range(0, count, 250)))


class ConsulHarness(Harness):
    backend = "consul"

    def __init__(self, workdir: Path, **kwargs: Any) -> None:
        super().__init__(workdir, **kwargs)
        self.cluster = ConsulCluster(workdir / "stores")
        self._http = httpx.Client(timeout=5)

    def store_cluster(self) -> EtcdCluster | RqliteCluster | ConsulCluster:
        return self.cluster

    def store_url(self, ordinal: int) -> str:
        return self.cluster.api_url(ordinal)

    def remove_through_store(self, ordinal: int) -> None:
        self.cluster.leave(ordinal)

    def put(self, key: str, value: str) -> bool:
        for ordinal in self.running():
            try:
                response = self._http.put(f"{self.cluster.api_url(ordinal)}/v1/kv/{key}",
                                          content=value.encode())
            except httpx.HTTPError:
                continue
            if response.status_code == 200 and response.json() is True:
                return True
        return False

    def _read(self, url: str, prefix: str) -> dict[str, str]:
        response = self._http.get(f"{url}/v1/kv/{prefix}", params={"recurse": "true"})
        if response.status_code == 404:
            return {}
        response.raise_for_status()
        return {kv["Key"]: base64.b64decode(kv["Value"] or b"").decode()
                for kv in response.json()}

    def read_all(self) -> dict[str, str]:
        return self._read(self.cluster.api_url(self.leader()), "w/")

    def read_local(self, ordinal: int, key: str) -> str | None:
        response = self._http.get(f"{self.cluster.api_url(ordinal)}/v1/kv/{key}?stale")
        if response.status_code == 404:
            return None
        return base64.b64decode(response.json()[0]["Value"] or b"").decode()

    def write_entries(self, count: int, *, size: int = 100) -> None:
        url = self.cluster.api_url(self.leader())
        value = b"x" * size

        def writer(start: int) -> None:
            with httpx.Client(timeout=10) as client:
                for i in range(start, min(count, start + 250)):
                    client.put(f"{url}/v1/kv/bulk/{i}", content=value).raise_for_status()

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(writer, range(0, count, 250)))


HARNESSES: dict[str, type[Harness]] = {"etcd": EtcdHarness, "rqlite": RqliteHarness,
                                       "consul": ConsulHarness}
