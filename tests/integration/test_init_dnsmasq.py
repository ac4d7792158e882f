"""`sts-agent init` as an init container would run it, against a real dnsmasq."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from player.dns import Dnsmasq, Records, statefulset_records

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "consul"


def consul_records(pods: dict[int, str], domain: str = "k8s.example") -> Records:
    return statefulset_records(statefulset="consul", service="consul", namespace="prod",
                               domain=domain, pods=pods, ports={"serflan": 8301})


def init_command(server: Dnsmasq, tmp_path: Path, pod: int, *extra: str) -> tuple[
    list[str], dict[str, str]
]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENT_", "POD_"))}
    env.update({
        "POD_NAME": f"consul-{pod}",
        "POD_NAMESPACE": "prod",
        "POD_IP": f"127.0.10.{pod + 1}",
        "AGENT_SERVICE": "consul",
        "AGENT_BACKEND": "consul",
        "AGENT_DNS_SERVER": server.server,
        "AGENT_LOG_FORMAT": "json",
        "AGENT_CLUSTER_DOMAIN": "k8s.example",
        "AGENT_OUTPUT_DIR": str(tmp_path / "out"),
    })
    return [sys.executable, "-m", "agent", "init", *extra], env


def run_init(server: Dnsmasq, tmp_path: Path, pod: int, *extra: str,
             timeout: float = 60) -> subprocess.CompletedProcess[str]:
    command, env = init_command(server, tmp_path, pod, *extra)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT)


def test_seed_consul_config_rewritten_for_prod_and_custom_domain(
    dnsmasq: Dnsmasq, tmp_path: Path
) -> None:
    dnsmasq.set_records(consul_records({0: "127.0.10.1", 1: "127.0.10.2", 2: "127.0.10.3"}))
    result = run_init(dnsmasq, tmp_path, 1, "--templates-dir", str(EXAMPLES / "config"),
                      "--namespace-rewrite", "default")
    assert result.returncode == 0, result.stderr
    config = json.loads((tmp_path / "out/consul.json").read_text())
    assert config["retry_join"] == [f"consul-{i}.consul.prod.svc.k8s.example" for i in range(3)]
    assert config["datacenter"] == "kubernetes"
    assert config["domain"] == "cluster.local"
    events = [json.loads(line)["event"] for line in result.stderr.splitlines()]
    assert events[0] == "init_start" and events[-1] == "init_done"


def test_template_retry_join_from_discovered_peers(dnsmasq: Dnsmasq, tmp_path: Path) -> None:
    # Scale-up: consul-3 joins a running 3-pod cluster; DNS knows 0..3.
    dnsmasq.set_records(consul_records({i: f"127.0.10.{i + 1}" for i in range(4)}))
    result = run_init(dnsmasq, tmp_path, 3, "--templates-dir", str(EXAMPLES / "template"),
                      "--srv-port-name", "serflan")
    assert result.returncode == 0, result.stderr
    config = json.loads((tmp_path / "out/consul.json").read_text())
    assert config["retry_join"] == [f"consul-{i}.consul.prod.svc.k8s.example" for i in range(4)]
    assert config["node_name"] == "consul-3"
    assert config["advertise_addr"] == "127.0.10.4"
    assert config["bootstrap_expect"] == 3


def test_init_waits_for_own_record(dnsmasq: Dnsmasq, tmp_path: Path) -> None:
    command, env = init_command(dnsmasq, tmp_path, 0, "--templates-dir",
                                str(EXAMPLES / "template"))
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        log = tmp_path / "dns" / "dnsmasq.log"
        # Wait until init has asked for its own name at least once (it is not there yet).
        while "consul-0.consul.prod.svc.k8s.example" not in log.read_text():
            assert time.monotonic() < deadline, "init never queried its own name"
            assert process.poll() is None, process.communicate()
            time.sleep(0.05)  # poll interval while reading dnsmasq's query log
        assert not (tmp_path / "out").exists()
        dnsmasq.set_records(consul_records({0: "127.0.10.1"}))
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    config = json.loads((tmp_path / "out/consul.json").read_text())
    assert config["node_name"] == "consul-0"
    waits = [json.loads(line) for line in stderr.splitlines()
             if json.loads(line)["event"] == "waiting"]
    assert waits and "does not resolve yet" in waits[0]["missing"]


def test_wait_for_peers_deadline_exits_4_and_writes_nothing(
    dnsmasq: Dnsmasq, tmp_path: Path
) -> None:
    dnsmasq.set_records(consul_records({0: "127.0.10.1", 1: "127.0.10.2"}))
    result = run_init(dnsmasq, tmp_path, 0, "--templates-dir", str(EXAMPLES / "template"),
                      "--wait-for-peers", "--dns-wait-timeout-seconds", "1")
    assert result.returncode == 4
    assert "missing consul-2.consul.prod.svc.k8s.example" in result.stderr
    assert not (tmp_path / "out").exists()


def test_unknown_template_variable_leaves_output_untouched(
    dnsmasq: Dnsmasq, tmp_path: Path
) -> None:
    dnsmasq.set_records(consul_records({0: "127.0.10.1"}))
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "consul.json.j2").write_text('{"retry_join": {{ peer_list | tojson }}}')
    out = tmp_path / "out"
    out.mkdir()
    (out / "consul.json").write_text("previous")
    result = run_init(dnsmasq, tmp_path, 0, "--templates-dir", str(templates))
    assert result.returncode == 3
    assert "sts-agent: consul.json.j2: unknown variable 'peer_list'" in result.stderr
    assert (out / "consul.json").read_text() == "previous"
    assert [p.name for p in out.iterdir()] == ["consul.json"]


def test_dns_server_down_exits_4_naming_it_and_writes_nothing(
    dnsmasq: Dnsmasq, tmp_path: Path
) -> None:
    dnsmasq.set_records(consul_records({0: "127.0.10.1"}))
    dnsmasq.stop()
    result = run_init(dnsmasq, tmp_path, 0, "--templates-dir", str(EXAMPLES / "template"),
                      "--dns-wait-timeout-seconds", "3")
    assert result.returncode == 4, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("sts-agent: DiscoveryError: gave up waiting for own DNS name")
    assert f"no answer from DNS server {dnsmasq.server}" in last
    assert not (tmp_path / "out").exists()


def test_dns_server_back_within_the_deadline(dnsmasq: Dnsmasq, tmp_path: Path) -> None:
    """An outage shorter than the deadline costs time, not the pod start."""
    dnsmasq.set_records(consul_records({0: "127.0.10.1"}))
    dnsmasq.stop()
    command, env = init_command(dnsmasq, tmp_path, 0, "--templates-dir",
                                str(EXAMPLES / "template"), "--dns-wait-timeout-seconds", "60")
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        waits = 0
        deadline = time.monotonic() + 30
        while waits < 1:  # init has met the outage and said so
            assert time.monotonic() < deadline, "init never reported the DNS outage"
            line = process.stderr.readline()
            assert line, process.communicate()
            event = json.loads(line)
            if event["event"] == "waiting":
                assert "no answer from DNS server" in event["missing"]
                waits += 1
        dnsmasq.start()
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    assert json.loads((tmp_path / "out/consul.json").read_text())["node_name"] == "consul-0"
