"""rqlite for the tests and the player: the pinned rqlited on loopback, SQL as a KV client."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from player.peers import cached_binary
from player.stores.base import Harness, Image, Kv, LoopbackCluster


def rqlited_binary(tag: str = "") -> str:
    """The pinned build (the image's tag is not read: one version is played)."""
    return cached_binary("rqlited", "RQLITE_VERSION")


IMAGES = {"rqlite/rqlite": Image(("docker-entrypoint.sh",), {"rqlited": rqlited_binary})}
CREATE_KV = "CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT)"


class RqliteKv(Kv):
    """Keys and values as rows of a ``kv`` table, created with the first write."""

    def __init__(self, http: httpx.Client) -> None:
        super().__init__(http)
        self._table = False

    @staticmethod
    def credentials(secrets: dict[str, dict[str, bytes]]) -> tuple[str, str] | None:
        """The first user with the 'all' permission in rqlite's -auth file (users.json)."""
        for secret in secrets.values():
            if "users.json" in secret:
                for user in json.loads(secret["users.json"]):
                    if "all" in user.get("perms", []):
                        return str(user["username"]), str(user["password"])
        return None

    def put(self, url: str, key: str, value: str) -> bool:
        statements: list[object] = [["INSERT OR REPLACE INTO kv(k, v) VALUES(?, ?)", key, value]]
        if not self._table:
            statements.insert(0, CREATE_KV)
        response = self.http.post(f"{url}/db/execute", json=statements)
        answer = response.json() if response.status_code == 200 else {}
        results = answer.get("results", [])
        done = bool(results) and not any("error" in r for r in results)
        self._table = self._table or done
        if not done:
            # A statement's error, or the request's (a forward to the leader refused).
            errors = [str(r["error"]) for r in results if "error" in r]
            if "error" in answer:
                errors.append(str(answer["error"]))
            self.refused(response, "; ".join(errors))
        return done

    def read_prefix(self, url: str, prefix: str) -> dict[str, str]:
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        answer = self.http.post(f"{url}/db/query?level=strong",
                                json=[["SELECT k, v FROM kv WHERE k >= ? AND k < ?",
                                       prefix, end]]).json()
        result = answer["results"][0]
        error = str(result.get("error", ""))
        if "no such table" in error:
            return {}
        if error:  # "not leader", a timeout: no answer, not an empty store
            raise ValueError(f"rqlite query through {url}: {error}")
        return {str(k): str(v) for k, v in result.get("values") or []}

    def get(self, url: str, key: str) -> str | None:
        # linearizable: the leader confirms its leadership with a quorum before it reads.
        response = self.http.post(f"{url}/db/query?level=linearizable",
                                  json=[["SELECT v FROM kv WHERE k = ?", key]])
        response.raise_for_status()
        result = response.json()["results"][0]
        error = str(result.get("error", ""))
        if "no such table" in error:  # no write yet: the table comes with the first
            return None
        if error:
            raise ValueError(f"rqlite query through {url}: {error}")
        values = result.get("values") or []
        return str(values[0][0]) if values else None

    def read_local(self, url: str, key: str) -> str | None:
        answer = self.http.post(f"{url}/db/query?level=none",
                                json=[["SELECT v FROM kv WHERE k = ?", key]]).json()
        values = answer["results"][0].get("values") or []
        return str(values[0][0]) if values else None


@dataclass
class RqliteCluster(LoopbackCluster):
    """rqlite nodes with ids ``rqlite-<i>`` on ``127.0.30.<i+1>`` (HTTP 4001, raft 4002)."""

    subnet: int = 30
    election_timeout: str = "1s"
    extra_args: dict[int, list[str]] = field(default_factory=dict)
    prefix = "rqlite"
    log_name = "rqlited.log"

    def api_url(self, ordinal: int) -> str:
        return f"http://{self.ip(ordinal)}:4001"

    def _command(self, ordinal: int, *, join: list[int], bootstrap_expect: int) -> list[str]:
        node = self.nodes[ordinal]
        command = [
            rqlited_binary(), "-node-id", node.name,
            "-http-addr", f"{node.ip}:4001", "-raft-addr", f"{node.ip}:4002",
            "-raft-election-timeout", self.election_timeout,
            "-join", ",".join(f"{self.ip(o)}:4002" for o in join),
            "-join-interval", "500ms", "-join-attempts", "60",
        ]
        if bootstrap_expect:
            command += ["-bootstrap-expect", str(bootstrap_expect)]
        return [*command, *self.extra_args.get(ordinal, []), str(node.data_dir)]

    def pod_command(self, ordinal: int, *, config_dir: Path, bootstrap_expect: int) -> list[str]:
        # As the manifest does: fixed flags, -join the bootstrap members.
        return self._command(ordinal, join=list(range(bootstrap_expect)),
                             bootstrap_expect=bootstrap_expect)

    def start(self, count: int) -> None:
        for ordinal in range(count):
            self._node(ordinal)
            self.launch(ordinal, self._command(ordinal, join=list(range(count)),
                                                bootstrap_expect=count))
        self.wait_leader()

    def add(self, ordinal: int) -> None:
        self._node(ordinal)
        join = [o for o, n in sorted(self.nodes.items()) if n.running]
        self.launch(ordinal, self._command(ordinal, join=join, bootstrap_expect=0))

    def status(self, ordinal: int) -> Any:
        response = self.http.get(self.api_url(ordinal) + "/status")
        response.raise_for_status()
        return response.json()

    def leader(self) -> int | None:
        for ordinal, node in sorted(self.nodes.items()):
            if not node.running:
                continue
            try:
                leader = self.status(ordinal)["store"]["leader"].get("node_id")
            except (httpx.HTTPError, KeyError, ValueError):
                continue
            if leader:
                return int(leader.rsplit("-", 1)[1])
        return None

    def _leader_url(self) -> str:
        return self.api_url(self.wait_leader())

    def remove(self, node_id: str) -> None:
        """Remove a node through the leader; a node already gone is success."""
        response = self.http.request("DELETE", self._leader_url() + "/remove",
                                     json={"id": node_id})
        if response.status_code == 404 or "not found" in response.text.lower():
            return
        response.raise_for_status()

    def execute(self, statements: list[Any]) -> Any:
        response = self.http.post(self._leader_url() + "/db/execute", json=statements)
        response.raise_for_status()
        return response.json()


class RqliteHarness(Harness[RqliteCluster]):
    store = "rqlite"
    kv_class = RqliteKv

    def make_cluster(self, workdir: Path) -> RqliteCluster:
        return RqliteCluster(workdir, election_timeout=f"{int(self.election_seconds * 1000)}ms")

    def remove_through_store(self, ordinal: int) -> None:
        self.cluster.remove(self.cluster.node_id(ordinal))

    def write_entries(self, count: int, *, size: int = 100, first: int = 0) -> None:
        self.cluster.execute(["CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)"])
        super().write_entries(count, size=size, first=first)

    def write_one_bulk(self, client: httpx.Client, url: str, index: int, value: str) -> None:
        client.post(url + "/db/execute", json=[["INSERT INTO t(v) VALUES(?)", value]]
                    ).raise_for_status()


HARNESS = RqliteHarness
