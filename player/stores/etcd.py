"""etcd for the tests and the player: Debian's etcd on loopback, its v3 gateway as a KV client."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from player.peers import cached_binary, installed_binary, pinned
from player.stores.base import Harness, Image, Kv, LoopbackCluster
from player.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]


# The etcd versions played: 3.4 is Debian's etcd-server, 3.5 and 3.6 the pinned builds
# (scripts/peers.env). k8s/etcd ships 3.6, which is also what the harness runs unless told.
VERSIONS: dict[str, str | None] = {"3.4": None, "3.5": "ETCD_35_VERSION",
                                   "3.6": "ETCD_36_VERSION"}
DEFAULT_VERSION = "3.6"


def etcd_binary(version: str = DEFAULT_VERSION) -> str:
    if version not in VERSIONS:
        raise ValueError(f"etcd {version} is not played; versions: {', '.join(VERSIONS)}")
    pinned_key = VERSIONS[version]
    if pinned_key is None:
        return installed_binary("etcd", "etcd-server")
    return cached_binary("etcd", pinned_key)


DEBIAN_TAG = "v3.4.23"  # the release of Debian 12's etcd-server


def image_tag(version: str) -> str:
    """The etcd image tag that plays ``version``: ``3.5`` -> ``v3.5.35`` (the pin)."""
    pinned_key = VERSIONS[version]
    return pinned(pinned_key) if pinned_key else DEBIAN_TAG


def version_of(tag: str) -> str:
    """The played version for an image tag: ``v3.5.35`` -> ``3.5``; no tag: the default."""
    if not tag:
        return DEFAULT_VERSION
    parts = tag.removeprefix("v").split(".")
    return ".".join(parts[:2])


def image_binary(tag: str) -> str:
    return etcd_binary(version_of(tag))


IMAGES = {"gcr.io/etcd-development/etcd": Image(("/usr/local/bin/etcd",),
                                                {"etcd": image_binary})}


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class EtcdKv(Kv):
    """Keys and values through etcd's v3 JSON gateway (base64 on the wire)."""

    def put(self, url: str, key: str, value: str) -> bool:
        body = {"key": _b64(key), "value": _b64(value)}
        response = self.http.post(f"{url}/v3/kv/put", json=body)
        done = response.status_code == 200
        if not done:
            self.refused(response)
        return done

    def read_prefix(self, url: str, prefix: str) -> dict[str, str]:
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)  # the whole prefix: "w/" .. "w0"
        response = self.http.post(f"{url}/v3/kv/range",
                                  json={"key": _b64(prefix), "range_end": _b64(end)})
        response.raise_for_status()  # "no leader" is no answer, not an empty store
        answer = response.json()
        if "header" not in answer:
            raise ValueError(f"etcd range through {url}: {response.text[:200]}")
        return {base64.b64decode(kv["key"]).decode(): base64.b64decode(kv["value"]).decode()
                for kv in answer.get("kvs", [])}

    def get(self, url: str, key: str) -> str | None:
        # Not serializable: the member confirms with its leader that it has caught up.
        response = self.http.post(f"{url}/v3/kv/range", json={"key": _b64(key)})
        response.raise_for_status()
        answer = response.json()
        if "header" not in answer:
            raise ValueError(f"etcd range through {url}: {response.text[:200]}")
        kvs = answer.get("kvs") or []
        return base64.b64decode(kvs[0]["value"]).decode() if kvs else None

    def read_local(self, url: str, key: str) -> str | None:
        answer = self.http.post(f"{url}/v3/kv/range",
                                json={"key": _b64(key), "serializable": True}).json()
        kvs = answer.get("kvs") or []
        return base64.b64decode(kvs[0]["value"]).decode() if kvs else None


@dataclass
class EtcdCluster(LoopbackCluster):
    """etcd members named ``etcd-<i>`` on ``127.0.20.<i+1>``."""

    subnet: int = 20
    version: str = DEFAULT_VERSION
    election_ms: int = 1000
    heartbeat_ms: int = 100
    token: str = "sts-agent-test"
    prefix = "etcd"
    log_name = "etcd.log"

    def client_url(self, ordinal: int) -> str:
        return f"http://{self.ip(ordinal)}:2379"

    def api_url(self, ordinal: int) -> str:
        return self.client_url(ordinal)

    def peer_url(self, ordinal: int) -> str:
        return f"http://{self.ip(ordinal)}:2380"

    def _command(self, ordinal: int, initial: dict[int, str], state: str) -> list[str]:
        node = self.nodes[ordinal]
        cluster = ",".join(f"etcd-{o}={url}" for o, url in sorted(initial.items()))
        return [
            etcd_binary(self.version), "--name", node.name, "--data-dir", str(node.data_dir),
            "--listen-client-urls", self.client_url(ordinal),
            "--advertise-client-urls", self.client_url(ordinal),
            "--listen-peer-urls", self.peer_url(ordinal),
            "--initial-advertise-peer-urls", self.peer_url(ordinal),
            "--initial-cluster", cluster, "--initial-cluster-state", state,
            "--initial-cluster-token", self.token,
            "--election-timeout", str(self.election_ms),
            "--heartbeat-interval", str(self.heartbeat_ms),
            "--logger", "zap", "--log-outputs", "stderr",
        ]

    def pod_command(self, ordinal: int, *, config_dir: Path, bootstrap_expect: int) -> list[str]:
        return [etcd_binary(self.version), "--config-file", str(config_dir / "etcd.conf.yml")]

    def start(self, count: int) -> None:
        initial = {o: self.peer_url(o) for o in range(count)}
        for ordinal in range(count):
            self._node(ordinal)
            self.launch(ordinal, self._command(ordinal, initial, "new"))
        self.wait_leader()

    def add(self, ordinal: int, *, learner: bool = False, timeout: float = 30.0) -> str:
        """``member add`` a new voter (or learner) through the API, then start it; returns
        its id. etcd refuses adds while members are younger than 5 s: retried."""
        node = self._node(ordinal)
        body: dict[str, Any] = {"peerURLs": [self.peer_url(ordinal)], "isLearner": learner}
        answer = wait_until(lambda: self.api(None, "/v3/cluster/member/add", body),
                            what=f"etcd to accept adding etcd-{ordinal}", timeout=timeout,
                            interval=0.25)
        initial = {}
        for member in answer["members"]:
            name = member.get("name") or node.name
            initial[int(name.rsplit("-", 1)[1])] = member["peerURLs"][0]
        self.launch(ordinal, self._command(ordinal, initial, "existing"))
        return str(answer["member"]["ID"])

    def api(self, ordinal: int | None, path: str, body: dict[str, Any]) -> Any:
        """POST to one member's v3 gateway (any running member when ``ordinal`` is None)."""
        ordinals = [ordinal] if ordinal is not None else [
            o for o, n in sorted(self.nodes.items()) if n.running
        ]
        last: Exception | None = None
        for candidate in ordinals:
            try:
                response = self.http.post(self.client_url(candidate) + path, json=body)
                response.raise_for_status()
                return response.json()
            except httpx.HTTPError as exc:
                last = exc
        raise RuntimeError(f"no etcd member answered {path}: {last}")

    def member_ids(self) -> dict[str, str]:
        """name -> member id, as the cluster reports it."""
        return {m.get("name", ""): str(m["ID"])
                for m in self.api(None, "/v3/cluster/member/list", {})["members"]}

    def leader(self) -> int | None:
        ids = {v: k for k, v in self.member_ids().items()}
        for ordinal, node in sorted(self.nodes.items()):
            if not node.running:
                continue
            try:
                status = self.api(ordinal, "/v3/maintenance/status", {})
            except RuntimeError:
                continue
            leader = str(status.get("leader", "0"))
            if leader != "0" and leader in ids:
                return int(ids[leader].rsplit("-", 1)[1])
        return None

    def wait_leader(self, timeout: float = 30.0) -> int:
        return wait_until(lambda: self.leader(), what="an etcd leader", timeout=timeout)

    def _remove_once(self, member_id: str) -> bool:
        """One removal attempt; True when the member is out. "member not found" is success:
        an earlier attempt that timed out on our side may have committed."""
        for ordinal, node in sorted(self.nodes.items()):
            if not node.running:
                continue
            try:
                response = self.http.post(self.client_url(ordinal) +
                                          "/v3/cluster/member/remove", json={"ID": member_id})
            except httpx.HTTPError:
                continue
            if response.status_code == 200 or "member not found" in response.text:
                return True
        return False

    def remove(self, member_id: str, timeout: float = 30.0) -> None:
        """Remove a member; etcd refuses ("unhealthy cluster") until every remaining
        member has been up for a few seconds, so retry until ``timeout``."""
        wait_until(lambda: self._remove_once(member_id),
                   what=f"etcd to accept removing member {member_id}", timeout=timeout,
                   interval=0.25)


class EtcdHarness(Harness[EtcdCluster]):
    store = "etcd"
    kv_class = EtcdKv
    templates = ROOT / "k8s" / "etcd" / "templates"

    def __init__(self, workdir: Path, *, version: str = DEFAULT_VERSION,
                 **kwargs: Any) -> None:
        self.version = version
        super().__init__(workdir, **kwargs)

    def make_cluster(self, workdir: Path) -> EtcdCluster:
        election_ms = int(self.election_seconds * 1000)
        return EtcdCluster(workdir, version=self.version, election_ms=election_ms,
                           heartbeat_ms=max(50, election_ms // 10))

    def remove_through_store(self, ordinal: int) -> None:
        member_id = self.cluster.member_ids().get(f"etcd-{ordinal}")
        if member_id is not None:  # None: already out
            self.cluster.remove(member_id)

    def write_one_bulk(self, client: httpx.Client, url: str, index: int, value: str) -> None:
        client.post(url + "/v3/kv/put", json={"key": _b64(f"key-{index}"),
                                              "value": _b64(value)}).raise_for_status()


HARNESS = EtcdHarness
