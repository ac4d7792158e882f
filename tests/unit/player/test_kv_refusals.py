"""The writers' clients say what a store answered to a write it refused."""

from __future__ import annotations

import httpx
import respx

from player.stores.consul import ConsulKv
from player.stores.etcd import EtcdKv
from player.stores.rqlite import RqliteKv

URL = "http://10.0.0.2:4001"


@respx.mock
def test_rqlite_s_error_result_is_the_refusal() -> None:
    respx.post(f"{URL}/db/execute").respond(
        json={"results": [{}, {"error": "leadership lost while committing log"}]})
    kv = RqliteKv(httpx.Client())
    assert not kv.put(URL, "d/1", "1")
    assert kv.refusal == "200 leadership lost while committing log"


@respx.mock
def test_rqlite_s_refused_forward_is_the_refusal() -> None:
    respx.post(f"{URL}/db/execute").respond(json={
        "results": [], "error": "node failed to process Execute on remote node at "
                               "rqlite-2.rqlite:4002: leadership transfer in progress"})
    kv = RqliteKv(httpx.Client())
    assert not kv.put(URL, "d/1", "1")
    assert kv.refusal.endswith("rqlite-2.rqlite:4002: leadership transfer in progress")


@respx.mock
def test_an_etcd_or_consul_status_is_the_refusal() -> None:
    respx.post(f"{URL}/v3/kv/put").respond(503, text='{"error":"etcdserver: no leader"}\n')
    respx.put(f"{URL}/v1/kv/d/1").respond(500, text="No cluster leader")
    etcd, consul = EtcdKv(httpx.Client()), ConsulKv(httpx.Client())
    assert not etcd.put(URL, "d/1", "1") and not consul.put(URL, "d/1", "1")
    assert etcd.refusal == '503 {"error":"etcdserver: no leader"}'
    assert consul.refusal == "500 No cluster leader"


@respx.mock
def test_an_acknowledged_write_leaves_no_refusal() -> None:
    respx.post(f"{URL}/db/execute").respond(json={"results": [{}, {"rows_affected": 1}]})
    kv = RqliteKv(httpx.Client())
    assert kv.put(URL, "d/1", "1") and kv.refusal == ""
