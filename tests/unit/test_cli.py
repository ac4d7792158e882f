"""CLI: exit codes, one line per problem, nothing written on error, import discipline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest

from agent.backends import BACKENDS, backend_class
from agent.cli import build_parser, cluster_domain, main
from agent.config import Backend, Settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "consul"


@pytest.fixture
def pod_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("POD_NAME", "consul-1")
    monkeypatch.setenv("POD_NAMESPACE", "prod")
    monkeypatch.setenv("POD_IP", "10.0.0.2")
    monkeypatch.setenv("AGENT_SERVICE", "consul")
    monkeypatch.setenv("AGENT_LOG_FORMAT", "json")
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("search prod.svc.k8s.example svc.k8s.example k8s.example\n")
    monkeypatch.setenv("AGENT_RESOLV_CONF_PATH", str(resolv))
    return tmp_path


def test_render_consul_template_in_prod(pod_env: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_VAR_DATACENTER", "eu1")
    out = pod_env / "out"
    code = main(["render", "--templates-dir", str(EXAMPLES / "template"),
                 "--output-dir", str(out), "--backend", "consul"])
    assert code == 0
    config = json.loads((out / "consul.json").read_text())
    assert config["retry_join"] == [f"consul-{i}.consul.prod.svc.k8s.example" for i in range(3)]
    assert config["datacenter"] == "eu1"
    assert config["node_name"] == "consul-1"
    assert config["advertise_addr"] == "10.0.0.2"
    log_line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert log_line["event"] == "rendered"
    assert log_line["pod"] == "consul-1" and log_line["namespace"] == "prod"


def test_config_error_exit_2_one_line_per_problem(pod_env: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = pod_env / "out"
    code = main(["init", "--bootstrap-expect", "0", "--pod-ip", "nope",
                 "--output-dir", str(out)])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "sts-agent: ConfigError: 3 configuration problem(s)",
        "sts-agent: POD_IP (--pod-ip): 'nope' is not an IP address (got 'nope')",
        "sts-agent: AGENT_BOOTSTRAP_EXPECT (--bootstrap-expect): Input should be greater than "
        "or equal to 1 (got '0')",
        "sts-agent: AGENT_TEMPLATES_DIR (--templates-dir): required by 'init' but not set",
    ]
    assert not out.exists()


def test_unknown_template_variable_names_variable_and_file(
    pod_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    templates = pod_env / "templates"
    templates.mkdir()
    (templates / "good.conf.j2").write_text("{{ pod_name }}")
    (templates / "bad.conf.j2").write_text("{{ pod_nmae }}")
    out = pod_env / "out"
    out.mkdir()
    code = main(["render", "--templates-dir", str(templates), "--output-dir", str(out)])
    assert code == 3
    err = capsys.readouterr().err
    assert "sts-agent: bad.conf.j2: unknown variable 'pod_nmae'" in err.splitlines()
    assert list(out.iterdir()) == []


def test_cluster_domain_sources(tmp_path: Path) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("search ns.svc.corp svc.corp corp\n")
    assert cluster_domain(Settings(resolv_conf_path=resolv)) == "corp"
    assert cluster_domain(Settings(resolv_conf_path=resolv, cluster_domain="x.y")) == "x.y"
    assert cluster_domain(Settings(resolv_conf_path=tmp_path / "missing")) == "cluster.local"


def test_every_setting_is_a_flag_of_every_command() -> None:
    parser = build_parser()
    args = parser.parse_args(["init", "--bootstrap-expect", "5", "--no-wait-for-self"])
    assert vars(args) == {"command": "init", "bootstrap_expect": "5", "wait_for_self": False}


HEAVY = ("aiohttp", "prometheus_client", "lightkube", "httpx", "agent.backends")


def test_init_imports_nothing_heavy(pod_env: Path) -> None:
    """init runs its whole path (here up to a DNS deadline) without the sidecar's libraries."""
    script = (
        "import sys\n"
        "from agent.cli import main\n"
        f"code = main(['init', '--templates-dir', {str(EXAMPLES / 'template')!r}, "
        f"'--output-dir', {str(pod_env / 'out')!r}, '--dns-server', '127.0.0.1:9', "
        "'--dns-query-timeout-seconds', '0.1', '--dns-wait-timeout-seconds', '0.3'])\n"
        f"heavy = sorted(m for m in sys.modules if m.startswith({HEAVY!r}))\n"
        "print(code, heavy, 'dns.asyncresolver' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=ROOT, check=True)
    assert result.stdout.strip() == "4 [] True", result.stderr
    assert not (pod_env / "out").exists()


def test_render_run_imports_nothing_heavy(pod_env: Path) -> None:
    script = (
        "import sys\n"
        "from agent.cli import main\n"
        f"code = main(['render', '--templates-dir', {str(EXAMPLES / 'template')!r}, "
        f"'--output-dir', {str(pod_env / 'out')!r}])\n"
        f"heavy = sorted(m for m in sys.modules if m.startswith({HEAVY!r} + ('dns',)))\n"
        "print(code, heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=ROOT, check=True)
    assert result.stdout.strip() == "0 []", result.stderr


def test_every_configurable_backend_has_an_adapter() -> None:
    """AGENT_BACKEND accepts exactly the stores the registry can drive."""
    assert set(get_args(Backend)) == set(BACKENDS)
    for name in BACKENDS:
        assert backend_class(name).name == name


@pytest.mark.parametrize(
    ("listen", "url"),
    [("0.0.0.0:9090", "http://127.0.0.1:9090"), ("[::]:9091", "http://[::1]:9091"),
     ("127.0.20.3:9090", "http://127.0.20.3:9090")],
)
def test_local_sidecar_url(listen: str, url: str) -> None:
    from agent.cli import _local_url

    assert _local_url(Settings(listen=listen)) == url


def test_store_url_credentials_redacted() -> None:
    from agent.lifecycle import redact

    assert redact("http://agent:s3cret@127.0.0.1:4001") == "http://***@127.0.0.1:4001"
    assert redact("http://127.0.0.1:4001/a@b") == "http://127.0.0.1:4001/a@b"


def test_default_seeds_from_stable_names() -> None:
    from agent.lifecycle import default_seeds

    settings = Settings(backend="etcd", pod_name="etcd-3", service="etcd", namespace="prod")
    assert default_seeds(settings, "cluster.local") == [
        f"http://etcd-{o}.etcd.prod.svc.cluster.local:2379" for o in range(3)]
    explicit = Settings(backend="etcd", seed_urls="http://a:1, http://b:2/")
    assert default_seeds(explicit, "cluster.local") == ["http://a:1", "http://b:2"]
    assert default_seeds(Settings(backend="etcd"), "cluster.local") == []
