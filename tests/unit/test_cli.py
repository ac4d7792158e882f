"""CLI: exit codes, one line per problem, nothing written on error, import discipline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent.cli import build_parser, main
from agent.registry import STORES

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


def test_every_setting_is_a_flag_of_every_command() -> None:
    parser = build_parser()
    args = parser.parse_args(["init", "--bootstrap-expect", "5", "--no-wait-for-self"])
    assert vars(args) == {"command": "init", "bootstrap_expect": "5", "wait_for_self": False}


# What init and render never load: the sidecar's libraries and any store's own code (a
# store's options, the settings its flags describe, are read with the command line).
LIBRARIES = ("aiohttp", "prometheus_client", "lightkube", "httpx")
STORE_CODE = tuple(f"agent.stores.{name}." for name in STORES)
HEAVY_OF = ("sorted(m for m in sys.modules if m.startswith({libraries!r}) or "
            "(m.startswith({code!r}) and not m.endswith('.options')))")


def test_init_imports_nothing_heavy(pod_env: Path) -> None:
    """init runs its whole path (here up to a DNS deadline) without the sidecar's libraries."""
    script = (
        "import sys\n"
        "from agent.cli import main\n"
        f"code = main(['init', '--templates-dir', {str(EXAMPLES / 'template')!r}, "
        f"'--output-dir', {str(pod_env / 'out')!r}, '--dns-server', '127.0.0.1:9', "
        "'--dns-query-timeout-seconds', '0.1', '--dns-wait-timeout-seconds', '0.3'])\n"
        f"heavy = {HEAVY_OF.format(libraries=LIBRARIES, code=STORE_CODE)}\n"
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
        f"heavy = {HEAVY_OF.format(libraries=(*LIBRARIES, 'dns'), code=STORE_CODE)}\n"
        "print(code, heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=ROOT, check=True)
    assert result.stdout.strip() == "0 []", result.stderr
