"""Cold start of `sts-agent render` and `init` next to the import floor of what init needs."""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from player.dns import Dnsmasq, statefulset_records

ROOT = Path(__file__).resolve().parents[1]
FLOOR = "import pydantic_settings, jinja2.sandbox, structlog, dns.asyncresolver"


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}"


def print_table(samples: dict[str, list[float]], *, what: str = "what",
                digits: int = 3, unit: str = "s") -> None:
    """One Markdown row per case: median, min and max (seconds unless ``unit`` says)."""
    print(f"| {what} | median {unit} | min {unit} | max {unit} |")
    print("|---|---|---|---|")
    for name, values in samples.items():
        print(f"| {name} | {statistics.median(values):.{digits}f} | {min(values):.{digits}f} "
              f"| {max(values):.{digits}f} |")


def timed(command: Sequence[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    agent = str(Path(sys.executable).with_name("sts-agent"))
    with tempfile.TemporaryDirectory() as tmp, Dnsmasq(Path(tmp, "dns")) as dns:
        dns.set_records(statefulset_records(statefulset="consul", service="consul",
                                            namespace="prod", domain="cluster.local",
                                            pods={0: "127.0.10.1", 1: "127.0.10.2",
                                                  2: "127.0.10.3"}))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENT_", "POD_"))}
        env.update({
            "POD_NAME": "consul-1", "POD_NAMESPACE": "prod", "POD_IP": "127.0.10.2",
            "AGENT_SERVICE": "consul", "AGENT_BACKEND": "consul",
            "AGENT_CLUSTER_DOMAIN": "cluster.local", "AGENT_DNS_SERVER": dns.server,
            "AGENT_TEMPLATES_DIR": str(ROOT / "examples/consul/template"),
            "AGENT_OUTPUT_DIR": str(Path(tmp, "out")), "AGENT_LOG_FORMAT": "json",
        })
        cases = {
            "import floor (pydantic_settings, jinja2.sandbox, structlog, dns.asyncresolver)":
                [sys.executable, "-c", FLOOR],
            "sts-agent render (Consul template)": [agent, "render"],
            "sts-agent init (own DNS + peers via dnsmasq, render)": [agent, "init"],
        }
        samples: dict[str, list[float]] = {name: [] for name in cases}
        for command in cases.values():  # warm the page cache once
            timed(command, env)
        for _ in range(args.runs):  # interleaved, so drift hits every case alike
            for name, command in cases.items():
                samples[name].append(timed(command, env))
    floor = statistics.median(samples[next(iter(cases))])
    print(f"Date: {datetime.date.today().isoformat()}; machine: {machine()}; "
          f"runs: {args.runs} each, interleaved\n")
    print("| command | median s | p90 s | ratio to floor |")
    print("|---|---|---|---|")
    for name, values in samples.items():
        ordered = sorted(values)
        p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
        median = statistics.median(values)
        print(f"| {name} | {median:.3f} | {p90:.3f} | {median / floor:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
