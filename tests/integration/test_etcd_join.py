"""`sts-agent init` for etcd against a real cluster: scale-up as learner, a removed member
coming back with its old data. The sidecar promotes; both end as ready voters."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from player.dns import Dnsmasq, statefulset_records
from player.harness import EtcdHarness
from player.stores import Proc, StoreNode, etcd_binary
from player.wait import wait_until
from tests.integration.conftest import require_store

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def init_pod(harness: EtcdHarness, dns: Dnsmasq, ordinal: int, tmp_path: Path) -> Path:
    """Run `sts-agent init` for pod ``ordinal``; returns the rendered config file."""
    data_dir = harness.cluster.workdir / f"etcd-{ordinal}" / "data"
    out = tmp_path / f"etcd-{ordinal}-config"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENT_", "POD_"))}
    env.update({
        "POD_NAME": f"etcd-{ordinal}", "POD_NAMESPACE": "default",
        "POD_IP": harness.ip(ordinal), "AGENT_BACKEND": "etcd", "AGENT_SERVICE": "etcd",
        "AGENT_DNS_SERVER": dns.server, "AGENT_CLUSTER_DOMAIN": "cluster.local",
        "AGENT_ADVERTISE": "ip", "AGENT_TEMPLATES_DIR": str(ROOT / "examples/etcd/template"),
        "AGENT_OUTPUT_DIR": str(out), "AGENT_DATA_DIR": str(data_dir),
        "AGENT_VAR_DATA_DIR": str(data_dir), "AGENT_LOG_FORMAT": "json",
        "AGENT_DNS_WAIT_TIMEOUT_SECONDS": "60", "AGENT_VAR_LISTEN_LOCALHOST": "false",
    })
    result = subprocess.run([sys.executable, "-m", "agent", "init"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return out / "etcd.conf.yml"


def start_from_config(harness: EtcdHarness, ordinal: int, config: Path) -> None:
    node = harness.cluster.nodes.get(ordinal) or StoreNode(
        f"etcd-{ordinal}", harness.ip(ordinal),
        harness.cluster.workdir / f"etcd-{ordinal}" / "data")
    node.proc = Proc([etcd_binary(), "--config-file", str(config)],
                     harness.cluster.workdir / f"etcd-{ordinal}" / "etcd-config.log")
    node.proc.start()
    harness.cluster.nodes[ordinal] = node


def test_scale_up_and_removed_member_return(tmp_path: Path) -> None:
    require_store("etcd")
    harness = EtcdHarness(tmp_path)
    dns = Dnsmasq(tmp_path / "dns")
    try:
        harness.start(3)
        for sidecar in harness.sidecars.values():
            sidecar.wait_ready(timeout=60)
        dns.start()
        dns.set_records(statefulset_records(
            statefulset="etcd", service="etcd", namespace="default", domain="cluster.local",
            pods={o: harness.ip(o) for o in range(4)}))
        seeds = ",".join(harness.store_url(o) for o in range(4))

        # Scale-up: pod 3 joins as a learner and is promoted by its sidecar.
        config = init_pod(harness, dns, 3, tmp_path)
        assert "initial-cluster-state: existing" in config.read_text()
        start_from_config(harness, 3, config)
        sidecar = harness.start_sidecar(3, env={"AGENT_SEED_URLS": seeds})
        sidecar.wait_ready(timeout=90)
        assert "learner_promoted" in sidecar.proc.log_path.read_text()

        # Pod 2 is removed (etcd stops it), then comes back with its old data dir.
        harness.remove_through_store(2)
        wait_until(lambda: not harness.cluster.nodes[2].running,
                   what="the removed etcd-2 to stop", timeout=30)
        harness.sidecars.pop(2).stop()
        config = init_pod(harness, dns, 2, tmp_path)
        data_dir = harness.cluster.workdir / "etcd-2" / "data"
        assert [p.name for p in data_dir.iterdir() if p.name.startswith("member.removed-")]
        start_from_config(harness, 2, config)
        returned = harness.start_sidecar(2, env={"AGENT_SEED_URLS": seeds})
        returned.wait_ready(timeout=90)
        authority = returned.status()["view"]["authority"]
        assert sorted(m["name"] for m in authority["members"]) == [
            "etcd-0", "etcd-1", "etcd-2", "etcd-3"]
        assert all(m["voter"] for m in authority["members"])
    except BaseException:
        print(harness.logs())
        raise
    finally:
        harness.close()
        dns.stop()
