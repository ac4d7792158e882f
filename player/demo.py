"""The README's demo: init containers of a 3-pod Consul StatefulSet against a local DNS."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from player.dns import Dnsmasq, statefulset_records

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "consul"
NAMESPACE = "prod"
DOMAIN = "k8s.example"
REPLICAS = 3


def _agent() -> list[str]:
    script = Path(sys.executable).with_name("sts-agent")
    return [str(script)] if script.exists() else [sys.executable, "-m", "agent"]


def _init(server: Dnsmasq, ordinal: int, templates: Path, out: Path,
          *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENT_", "POD_"))}
    env.update({
        "POD_NAME": f"consul-{ordinal}",
        "POD_NAMESPACE": NAMESPACE,
        "POD_IP": f"127.0.10.{ordinal + 1}",
        "AGENT_SERVICE": "consul",
        "AGENT_BACKEND": "consul",
        "AGENT_SRV_PORT_NAME": "serflan",
        "AGENT_DNS_SERVER": server.server,
        "AGENT_CLUSTER_DOMAIN": DOMAIN,
        "AGENT_TEMPLATES_DIR": str(templates),
        "AGENT_OUTPUT_DIR": str(out),
        "AGENT_LOG_FORMAT": "console",
        "AGENT_DNS_WAIT_TIMEOUT_SECONDS": "10",
    })
    return subprocess.run([*_agent(), "init", *extra], env=env, capture_output=True,
                          text=True, timeout=60, check=False)


def _section(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(0, 70 - len(title)))


def run(workdir: Path) -> int:
    """Play the init containers of consul-0..2 (OrderedReady) and show what they rendered."""
    pods: dict[int, str] = {}
    failures = 0
    with Dnsmasq(workdir / "dns", domains=(DOMAIN,)) as server:
        print(f"dnsmasq for {DOMAIN} on {server.server}; namespace {NAMESPACE!r}")
        for ordinal in range(REPLICAS):
            # The StatefulSet controller creates the pod; the endpoints controller
            # publishes its DNS record (publishNotReadyAddresses) before init runs.
            pods[ordinal] = f"127.0.10.{ordinal + 1}"
            server.set_records(statefulset_records(
                statefulset="consul", service="consul", namespace=NAMESPACE, domain=DOMAIN,
                pods=pods, ports={"serflan": 8301}))
            for variant, templates, extra in (
                ("seed config + namespace rewrite", EXAMPLES / "config",
                 ("--namespace-rewrite", "default")),
                ("template", EXAMPLES / "template", ()),
            ):
                out = workdir / f"consul-{ordinal}" / variant.split()[0]
                result = _init(server, ordinal, templates, out, *extra)
                _section(f"consul-{ordinal} init ({variant}): exit {result.returncode}")
                if result.returncode != 0:
                    failures += 1
                    print(result.stderr)
                    continue
                config = json.loads((out / "consul.json").read_text())
                if ordinal == 0:
                    print((out / "consul.json").read_text().rstrip())
                else:
                    print("retry_join:", ", ".join(config["retry_join"]))
        _section("a template with a typo: nothing is written")
        bad = workdir / "bad"
        bad.mkdir()
        (bad / "consul.json.j2").write_text('{"retry_join": {{ peer_list | tojson }}}\n')
        out = workdir / "bad-out"
        result = _init(server, 0, bad, out)
        print(f"exit {result.returncode}; output dir exists: {out.exists()}")
        print("\n".join(line for line in result.stderr.splitlines()
                        if line.startswith("sts-agent:")))
        if result.returncode == 0 or out.exists():
            failures += 1
    _section("verdict")
    print("ok: every pod rendered its config for namespace prod" if not failures
          else f"FAILED: {failures} step(s) went wrong")
    return 1 if failures else 0


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="sts-agent-demo-"))
    try:
        return run(workdir)
    except KeyboardInterrupt:
        return 130
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
