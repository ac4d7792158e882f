"""Loading settings: env and flags, required per command, every problem named."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.config.loading import REQUIRED, describe, env_name, flag_name, load_settings
from agent.config.settings import Settings
from agent.errors import ConfigError
from agent.registry import STORES


def _load(command: str, monkeypatch: pytest.MonkeyPatch, env: dict[str, str],
          **flags: object) -> Settings:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return load_settings(command, flags, os.environ)


def _problems(command: str, monkeypatch: pytest.MonkeyPatch, env: dict[str, str],
              **flags: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        _load(command, monkeypatch, env, **flags)
    assert info.value.exit_code == 2
    return info.value.problems


GOOD = {
    "POD_NAME": "consul-1",
    "POD_NAMESPACE": "prod",
    "POD_IP": "10.0.0.7",
    "AGENT_SERVICE": "consul",
    "AGENT_TEMPLATES_DIR": "/config-in",
    "AGENT_OUTPUT_DIR": "/config-out",
}


def test_env_read_with_downward_api_names(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _load("init", monkeypatch, GOOD)
    assert settings.pod_name == "consul-1"
    assert settings.namespace == "prod"
    assert settings.pod_ip == "10.0.0.7"
    assert settings.service == "consul"
    assert settings.templates_dir == Path("/config-in")
    assert settings.bootstrap_expect == 3


def test_flags_win_over_env(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _load("init", monkeypatch, GOOD | {"AGENT_BOOTSTRAP_EXPECT": "5"},
                     bootstrap_expect="7", namespace="staging")
    assert settings.bootstrap_expect == 7
    assert settings.namespace == "staging"


def test_every_problem_named_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    problems = _problems(
        "init",
        monkeypatch,
        {
            "POD_NAME": "consul-01",
            "POD_IP": "10.0.0.300",
            "AGENT_BOOTSTRAP_EXPECT": "three",
            "AGENT_DNS_QUERY_TIMEOUT_SECONDS": "-1",
            "AGENT_BACKEND": "zookeeper",
            "AGENT_SERVICE": "Consul",
        },
    )
    text = "\n".join(problems)
    assert len(problems) == 9, text
    for needle in [
        "POD_NAME (--pod-name): pod name 'consul-01' is not a StatefulSet pod name",
        "POD_IP (--pod-ip): '10.0.0.300' is not an IP address",
        "AGENT_BOOTSTRAP_EXPECT (--bootstrap-expect): Input should be a valid integer",
        "AGENT_DNS_QUERY_TIMEOUT_SECONDS (--dns-query-timeout-seconds): Input should be "
        "greater than 0",
        f"AGENT_BACKEND (--backend): 'zookeeper' is not a store the agent knows "
        f"({', '.join(STORES)})",
        "AGENT_SERVICE (--service): 'Consul' is not a DNS-1123 label",
        "POD_NAMESPACE (--namespace): required by 'init' but not set",
        "AGENT_TEMPLATES_DIR (--templates-dir): required by 'init' but not set",
        "AGENT_OUTPUT_DIR (--output-dir): required by 'init' but not set",
    ]:
        assert needle in text


@pytest.mark.parametrize("command", sorted(REQUIRED))
def test_required_per_command(command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    problems = _problems(command, monkeypatch, {})
    assert problems == [f"{describe(f)}: required by '{command}' but not set"
                        for f in REQUIRED[command]]


def test_empty_env_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    problems = _problems("peers", monkeypatch, {"POD_NAME": "db-0", "POD_NAMESPACE": "",
                                                "AGENT_SERVICE": "db"})
    assert any("POD_NAMESPACE" in p and "required" in p for p in problems)


def test_overlapping_dirs_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    problems = _problems("init", monkeypatch, GOOD | {"AGENT_OUTPUT_DIR": "/config-in/out"})
    assert problems == [
        "AGENT_OUTPUT_DIR (--output-dir): must not overlap AGENT_TEMPLATES_DIR "
        "(--templates-dir) (/config-in/out vs /config-in)"
    ]


def test_ordinals_start_above_this_pod_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    pod = GOOD["POD_NAME"]
    problems = _problems("init", monkeypatch, GOOD | {"AGENT_ORDINALS_START": "7"})
    assert problems == [f"AGENT_ORDINALS_START (--ordinals-start): 7 is above this pod's "
                        f"ordinal {pod.rsplit('-', 1)[1]} ({pod}): set it to the "
                        "StatefulSet's spec.ordinals.start"]


def test_cluster_domain_normalised(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _load("init", monkeypatch, GOOD, cluster_domain="K8S.Example.")
    assert settings.cluster_domain == "k8s.example"


@pytest.mark.parametrize("bad", ["cluster..local", "-x.local", "a_b.local"])
def test_cluster_domain_rejected(bad: str, monkeypatch: pytest.MonkeyPatch) -> None:
    problems = _problems("init", monkeypatch, GOOD, cluster_domain=bad)
    assert len(problems) == 1 and problems[0].startswith("AGENT_CLUSTER_DOMAIN")


def test_ipv6_pod_ip_normalised(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _load("init", monkeypatch, GOOD | {"POD_IP": "fd00:0:0::0007"})
    assert settings.pod_ip == "fd00::7"


def test_booleans(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _load("init", monkeypatch, GOOD | {"AGENT_WAIT_FOR_PEERS": "true"},
                     wait_for_self=False)
    assert settings.wait_for_peers is True
    assert settings.wait_for_self is False


def test_nameserver_and_peer_port(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _load("init", monkeypatch, GOOD | {"AGENT_DNS_SERVER": "127.0.53.1:5353",
                                                  "AGENT_BACKEND": "consul"})
    assert settings.nameserver() == ("127.0.53.1", 5353)
    assert settings.effective_peer_port() == 8301
    assert _load("init", monkeypatch, GOOD, peer_port="9000").effective_peer_port() == 9000


def test_names() -> None:
    assert env_name("pod_name") == "POD_NAME"
    assert env_name("bootstrap_expect") == "AGENT_BOOTSTRAP_EXPECT"
    assert flag_name("dns_wait_timeout_seconds") == "--dns-wait-timeout-seconds"


def test_every_field_documented() -> None:
    for name, info in Settings.model_fields.items():
        assert info.description, name
        if "timeout" in name or "interval" in name:
            assert name.endswith("_seconds"), name


@pytest.mark.parametrize("store", sorted(STORES))
@pytest.mark.parametrize("spare", [0.0, 5.0, -0.5])
def test_leave_time_problem(store: str, spare: float) -> None:
    """The deadline (grace period minus margin) must cover what the store's removal can
    take (its spec); short by any amount, it is reported, naming the numbers."""
    margin = 5.0
    grace = margin + STORES[store].removal_seconds + spare
    settings = Settings(backend=store, termination_grace_period_seconds=grace,
                        leave_margin_seconds=margin)
    problem = settings.leave_time_problem()
    assert (problem is not None) == (spare < 0), problem
    if problem is not None:
        assert problem.startswith(f"the leave deadline ({grace - margin:g} s: ")
        assert f"shorter than a {store} removal can take" in problem
    assert Settings(termination_grace_period_seconds=6.0,
                    leave_margin_seconds=5.0).leave_time_problem() is None


DURATIONS = sorted(name for name in Settings.model_fields if name.endswith("_seconds"))


@pytest.mark.parametrize("value,problem", [
    ("inf", "Input should be a finite number"),
    ("nan", "Input should be a finite number"),
    ("1e300", "at most 604800 seconds (a week)"),
    ("604801", "at most 604800 seconds (a week)"),
])
def test_durations_finite_and_at_most_a_week(value: str, problem: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Past a week a duration overflows OS timers (socket timeouts): refused up front."""
    problems = _problems("status", monkeypatch, {env_name(f): value for f in DURATIONS})
    assert len(DURATIONS) >= 10
    for name in DURATIONS:
        assert f"{describe(name)}: {problem} (got '{value}')" in problems, problems
    for name in DURATIONS:
        monkeypatch.delenv(env_name(name))
    settings = _load("status", monkeypatch,
                     {"AGENT_TERMINATION_GRACE_PERIOD_SECONDS": "604800"})
    assert settings.termination_grace_period_seconds == 604800
