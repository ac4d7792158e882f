"""Store credentials for real: rqlite basic auth, etcd client-certificate TLS, Consul ACLs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from player.proc import Proc
from player.sidecar import Sidecar
from player.stores.base import loopback
from player.stores.consul import consul_binary
from player.stores.etcd import etcd_binary
from player.stores.rqlite import rqlited_binary
from player.wait import wait_until
from tests.integration.conftest import require_binary, require_store

pytestmark = pytest.mark.integration


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(directory: Path, server_ip: str) -> None:
    """A CA, a server certificate for ``server_ip`` and a client certificate."""
    directory.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
             "-out", "ca.crt", "-days", "1", "-subj", "/CN=test-ca", cwd=directory)
    for name, extension in (("server", f"subjectAltName=IP:{server_ip}"),
                            ("client", "extendedKeyUsage=clientAuth")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
                 "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=directory)
        (directory / f"{name}.ext").write_text(extension + "\n")
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.crt", "-days", "1",
                 "-extfile", f"{name}.ext", cwd=directory)


def test_etcd_with_client_certificates(tmp_path: Path) -> None:
    require_store("etcd")
    require_binary("openssl")
    ip = loopback(21, 1)
    pki = tmp_path / "pki"
    make_pki(pki, ip)
    url = f"https://{ip}:2379"
    etcd = Proc([
        etcd_binary(), "--name", "etcd-0", "--data-dir", str(tmp_path / "data"),
        "--listen-client-urls", url, "--advertise-client-urls", url,
        "--listen-peer-urls", f"http://{ip}:2380",
        "--initial-advertise-peer-urls", f"http://{ip}:2380",
        "--initial-cluster", f"etcd-0=http://{ip}:2380",
        "--cert-file", str(pki / "server.crt"), "--key-file", str(pki / "server.key"),
        "--client-cert-auth", "--trusted-ca-file", str(pki / "ca.crt"),
    ], tmp_path / "etcd.log")
    etcd.start()
    good = Sidecar(tmp_path, name="etcd-0", ip=ip, store="etcd", store_url=url,
                   extra_env={"AGENT_STORE_CA_FILE": str(pki / "ca.crt"),
                              "AGENT_STORE_CERT_FILE": str(pki / "client.crt"),
                              "AGENT_STORE_KEY_FILE": str(pki / "client.key")})
    no_cert = Sidecar(tmp_path, name="nocert-0", ip=ip, port=9191, store="etcd",
                      store_url=url, extra_env={"AGENT_STORE_CA_FILE": str(pki / "ca.crt")})
    try:
        good.start()
        no_cert.start()
        good.wait_ready(timeout=60)
        reasons = no_cert.wait_reason("store unreachable", timeout=30)
        assert no_cert.readyz()[0] == 503, reasons
    except BaseException:
        print(etcd.tail(), good.proc.tail(), no_cert.proc.tail(), sep="\n")
        raise
    finally:
        good.stop()
        no_cert.stop()
        etcd.stop()


def test_rqlite_with_basic_auth(tmp_path: Path) -> None:
    require_store("rqlite")
    ip = loopback(31, 1)
    auth = tmp_path / "auth.json"
    auth.write_text(json.dumps([{"username": "agent", "password": "s3cret",
                                 "perms": ["status", "ready"]}]))
    rqlite = Proc([rqlited_binary(), "-node-id", "rqlite-0", "-http-addr", f"{ip}:4001",
                   "-raft-addr", f"{ip}:4002", "-auth", str(auth), str(tmp_path / "data")],
                  tmp_path / "rqlited.log")
    rqlite.start()
    right, wrong = tmp_path / "right", tmp_path / "wrong"
    right.write_text("s3cret\n")
    wrong.write_text("guess\n")
    good = Sidecar(tmp_path, name="rqlite-0", ip=ip, store="rqlite",
                   store_url=f"http://{ip}:4001",
                   extra_env={"AGENT_STORE_USERNAME": "agent",
                              "AGENT_STORE_PASSWORD_FILE": str(right)})
    bad = Sidecar(tmp_path, name="bad-0", ip=ip, port=9191, store="rqlite",
                  store_url=f"http://{ip}:4001",
                  extra_env={"AGENT_STORE_USERNAME": "agent",
                             "AGENT_STORE_PASSWORD_FILE": str(wrong)})
    try:
        good.start()
        bad.start()
        good.wait_ready(timeout=60)
        reasons = bad.wait_reason("HTTP 401", timeout=30)
        assert reasons[0].startswith("store unreachable: unusable answer")
        for sidecar in (good, bad):
            text = (sidecar.proc.log_path.read_text() + json.dumps(sidecar.status())
                    + sidecar.metrics())
            assert "s3cret" not in text and "guess" not in text, "secrets stay out of logs"
    except BaseException:
        print(rqlite.tail(), good.proc.tail(), bad.proc.tail(), sep="\n")
        raise
    finally:
        good.stop()
        bad.stop()
        rqlite.stop()
    wait_until(lambda: not rqlite.running, what="rqlited to exit", timeout=10)


def test_consul_with_acls(tmp_path: Path) -> None:
    """ACLs on, default deny: the agent reads Consul with the token from its file; a
    sidecar without it is refused (403) and says so; the token shows up nowhere."""
    require_store("consul")
    ip = loopback(32, 1)
    token = "6d1c1a55-acl-s3cret"
    consul = Proc([consul_binary(), "agent", "-server", "-bootstrap-expect", "1",
                   "-node", "consul-0", "-bind", ip, "-advertise", ip, "-client", ip,
                   "-data-dir", str(tmp_path / "data"),
                   "-hcl", "ports { dns = -1, grpc = -1, grpc_tls = -1 }",
                   "-hcl", 'acl { enabled = true, default_policy = "deny", '
                           f'tokens {{ initial_management = "{token}" }} }}'],
                  tmp_path / "consul.log")
    consul.start()
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    good = Sidecar(tmp_path, name="consul-0", ip=ip, store="consul",
                   store_url=f"http://{ip}:8500",
                   extra_env={"AGENT_STORE_TOKEN_FILE": str(token_file)})
    bad = Sidecar(tmp_path, name="bad-0", ip=ip, port=9191, store="consul",
                  store_url=f"http://{ip}:8500")
    try:
        good.start()
        bad.start()
        good.wait_ready(timeout=60)
        reasons = bad.wait_reason("HTTP 403", timeout=30)
        assert reasons[0].startswith("store unreachable: unusable answer"), reasons
        for sidecar in (good, bad):
            text = (sidecar.proc.log_path.read_text() + json.dumps(sidecar.status())
                    + sidecar.metrics())
            assert token not in text, "the token stays out of logs, /status and /metrics"
    except BaseException:
        print(consul.tail(), good.proc.tail(), bad.proc.tail(), sep="\n")
        raise
    finally:
        good.stop()
        bad.stop()
        consul.stop()
    wait_until(lambda: not consul.running, what="consul to exit", timeout=30)
