"""Rendering: sandboxed templates, every problem at once, namespace rewrite, safe writes."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from agent.errors import RenderError
from agent.render import Rewrite, render_directory, rewrite_namespace, scan

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "consul"
PROD = Rewrite(source="default", namespace="prod", domain="cluster.local")


def _tree(root: Path, files: dict[str, str]) -> Path:
    for relpath, text in files.items():
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def _snapshot(root: Path) -> dict[str, tuple[bytes, int, float]]:
    found: dict[str, tuple[bytes, int, float]] = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        content = path.read_bytes() if path.is_file() and not path.is_symlink() else b""
        found[str(path.relative_to(root))] = (content, info.st_mode, info.st_mtime)
    return found


CONTEXT: dict[str, Any] = {
    "namespace": "prod",
    "pod_name": "consul-1",
    "peers": ["a", "b"],
    "vars": {"datacenter": "dc1"},
}


def test_renders_templates_and_copies_others(tmp_path: Path) -> None:
    src = _tree(tmp_path / "in", {
        "app.conf.j2": "ns={{ namespace }} pod={{ pod_name }} dc={{ vars.datacenter }}\n",
        "static.txt": "{{ not a template }}\n",
        "sub/peers.json.j2": "{{ peers | tojson }}",
    })
    result = render_directory(src, tmp_path / "out", CONTEXT)
    assert sorted(result.written) == ["app.conf", "static.txt", "sub/peers.json"]
    assert (tmp_path / "out/app.conf").read_text() == "ns=prod pod=consul-1 dc=dc1\n"
    assert (tmp_path / "out/static.txt").read_text() == "{{ not a template }}\n"
    assert json.loads((tmp_path / "out/sub/peers.json").read_text()) == ["a", "b"]


def test_unknown_names_in_all_files_reported_at_once_and_nothing_written(tmp_path: Path) -> None:
    src = _tree(tmp_path / "in", {
        "a.conf.j2": "{{ namespace }} {{ nmespace }} {{ podname }}",
        "b.conf.j2": "{% for p in peer %}{{ p }}{% endfor %}",
        "c.conf.j2": "fine {{ pod_name }}",
        "d.txt": "copied",
    })
    out = tmp_path / "out"
    out.mkdir()
    (out / "c.conf").write_text("old")
    before = _snapshot(out)
    with pytest.raises(RenderError) as info:
        render_directory(src, out, CONTEXT)
    assert info.value.exit_code == 3
    assert info.value.problems == [
        "a.conf.j2: unknown variable 'nmespace'",
        "a.conf.j2: unknown variable 'podname'",
        "b.conf.j2: unknown variable 'peer'",
    ]
    assert _snapshot(out) == before


def test_syntax_and_runtime_errors_name_file_and_line(tmp_path: Path) -> None:
    src = _tree(tmp_path / "in", {
        "a.j2": "line one\n{% if %}\n",
        "b.j2": "one\ntwo {{ vars.missing }}\n",
        "c.j2": "{{ peers[5] }}",
    })
    with pytest.raises(RenderError) as info:
        render_directory(src, tmp_path / "out", CONTEXT)
    problems = info.value.problems
    assert problems[0].startswith("a.j2:2: syntax error:")
    assert problems[1].startswith("b.j2:2: undefined:") and "missing" in problems[1]
    assert problems[2].startswith("c.j2:1: undefined:")
    assert not (tmp_path / "out").exists()


def test_sandbox_blocks_python_internals(tmp_path: Path) -> None:
    src = _tree(tmp_path / "in", {
        "evil.j2": "{{ pod_name.__class__.__mro__[1].__subclasses__() }}",
    })
    with pytest.raises(RenderError) as info:
        render_directory(src, tmp_path / "out", CONTEXT)
    assert "evil.j2" in info.value.problems[0]
    assert not (tmp_path / "out").exists()


def test_sandbox_blocks_mutating_context(tmp_path: Path) -> None:
    src = _tree(tmp_path / "in", {"m.j2": "{{ peers.append('x') }}"})
    with pytest.raises(RenderError, match="problem"):
        render_directory(src, tmp_path / "out", CONTEXT)
    assert CONTEXT["peers"] == ["a", "b"]


def test_include_between_templates(tmp_path: Path) -> None:
    src = _tree(tmp_path / "in", {
        "main.conf.j2": "{% include 'common.inc' %}|{{ pod_name }}",
        "common.inc": "common",
    })
    # Only templates can be included: a plain file is not in the loader.
    with pytest.raises(RenderError, match="problem"):
        render_directory(src, tmp_path / "out", CONTEXT)
    _tree(src, {"common.inc.j2": "ns={{ namespace }}"})
    (src / "main.conf.j2").write_text("{% include 'common.inc.j2' %}|{{ pod_name }}")
    (src / "common.inc").unlink()
    render_directory(src, tmp_path / "out", CONTEXT)
    assert (tmp_path / "out/main.conf").read_text() == "ns=prod|consul-1"


def test_two_sources_for_one_output_rejected(tmp_path: Path) -> None:
    src = _tree(tmp_path / "in", {"a.conf": "x", "a.conf.j2": "y"})
    with pytest.raises(RenderError) as info:
        render_directory(src, tmp_path / "out", CONTEXT)
    assert "a.conf.j2: would write a.conf, already written from a.conf" in info.value.problems


def test_modes_kept_and_rerun_idempotent(tmp_path: Path) -> None:
    src = _tree(tmp_path / "in", {"run.sh.j2": "#!/bin/sh\necho {{ pod_name }}\n",
                                  "ro.conf": "x"})
    (src / "run.sh.j2").chmod(0o755)
    (src / "ro.conf").chmod(0o440)
    out = tmp_path / "out"
    first = render_directory(src, out, CONTEXT)
    assert sorted(first.written) == ["ro.conf", "run.sh"]
    assert stat.S_IMODE((out / "run.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((out / "ro.conf").stat().st_mode) == 0o440
    before = _snapshot(out)
    second = render_directory(src, out, CONTEXT)
    assert second.written == [] and sorted(second.unchanged) == ["ro.conf", "run.sh"]
    assert _snapshot(out) == before
    (src / "run.sh.j2").chmod(0o700)
    third = render_directory(src, out, CONTEXT)
    assert third.written == ["run.sh"]
    assert stat.S_IMODE((out / "run.sh").stat().st_mode) == 0o700
    assert not [p for p in out.iterdir() if ".tmp-" in p.name]


def test_configmap_layout_followed_and_internals_skipped(tmp_path: Path) -> None:
    mount = tmp_path / "cm"
    data = mount / "..2026_11_22_00_00_00.123"
    _tree(data, {"consul.json.j2": "{{ namespace }}", "sub/x.conf": "x"})
    (mount / "..data").symlink_to(data.name)
    (mount / "consul.json.j2").symlink_to("..data/consul.json.j2")
    (mount / "sub").symlink_to("..data/sub")
    sources = scan(mount, suffix=".j2")
    assert [str(s.relpath) for s in sources] == ["consul.json.j2", "sub/x.conf"]
    render_directory(mount, tmp_path / "out", CONTEXT)
    assert sorted(p.name for p in (tmp_path / "out").rglob("*")) == ["consul.json", "sub", "x.conf"]


def test_input_symlink_leaving_templates_dir_ignored(tmp_path: Path) -> None:
    outside = _tree(tmp_path / "outside", {"secret.txt": "s"})
    src = _tree(tmp_path / "in", {"a.txt": "a"})
    (src / "leak").symlink_to(outside, target_is_directory=True)
    assert [str(s.relpath) for s in scan(src, suffix=".j2")] == ["a.txt"]


def test_input_file_symlink_leaving_templates_dir_ignored(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("s")
    src = _tree(tmp_path / "in", {"a.txt": "a"})
    (src / "leak.txt").symlink_to(secret)
    assert [str(s.relpath) for s in scan(src, suffix=".j2")] == ["a.txt"]


def test_symlinked_output_subdir_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    src = _tree(tmp_path / "in", {"sub/a.conf": "a", "b.conf": "b"})
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(RenderError) as info:
        render_directory(src, out, CONTEXT)
    assert "sub/a.conf: a parent in the output dir is a symlink" in info.value.problems[0]
    assert list(elsewhere.iterdir()) == []
    assert not (out / "b.conf").exists()


def test_symlinked_output_file_is_replaced_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep")
    src = _tree(tmp_path / "in", {"a.conf": "new"})
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.conf").symlink_to(victim)
    render_directory(src, out, CONTEXT)
    assert victim.read_text() == "keep"
    assert not (out / "a.conf").is_symlink()
    assert (out / "a.conf").read_text() == "new"


def test_output_directory_in_the_way(tmp_path: Path) -> None:
    src = _tree(tmp_path / "in", {"a.conf": "a"})
    (tmp_path / "out" / "a.conf").mkdir(parents=True)
    with pytest.raises(RenderError, match="output path problem"):
        render_directory(src, tmp_path / "out", CONTEXT)


def test_missing_templates_dir(tmp_path: Path) -> None:
    with pytest.raises(RenderError, match="is not a directory"):
        render_directory(tmp_path / "nope", tmp_path / "out", CONTEXT)


def test_binary_file_copied_verbatim_with_rewrite(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    blob = bytes(range(256)) + b"x.default.svc.cluster.local"
    (src / "blob.bin").write_bytes(blob)
    render_directory(src, tmp_path / "out", CONTEXT, rewrite=PROD)
    assert (tmp_path / "out/blob.bin").read_bytes() == blob


# --- namespace rewrite ------------------------------------------------------------


def test_seed_consul_config_in_prod_with_custom_domain(tmp_path: Path) -> None:
    rewrite = Rewrite(source="default", namespace="prod", domain="k8s.example")
    render_directory(EXAMPLES / "config", tmp_path / "out", {}, rewrite=rewrite)
    original = json.loads((EXAMPLES / "config/consul.json").read_text())
    rendered = json.loads((tmp_path / "out/consul.json").read_text())
    assert rendered["retry_join"] == [
        f"consul-{i}.consul.prod.svc.k8s.example" for i in range(3)
    ]
    # Everything else is untouched, notably the other "default"-free / domain-like values.
    assert {k: v for k, v in rendered.items() if k != "retry_join"} == {
        k: v for k, v in original.items() if k != "retry_join"
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('"consul-0.consul.default.svc.cluster.local"', '"consul-0.consul.prod.svc.cluster.local"'),
        ("consul.default.svc.cluster.local:8500", "consul.prod.svc.cluster.local:8500"),
        ("x.default.svc", "x.prod.svc"),
        ("_serf._tcp.consul.default.svc.cluster.local", "_serf._tcp.consul.prod.svc.cluster.local"),
        ("db-0.db.default.svc.corp.internal.", "db-0.db.prod.svc.cluster.local."),
        ('"datacenter": "default"', '"datacenter": "default"'),
        ("default.svc.cluster.local", "default.svc.cluster.local"),
        ("the default svc", "the default svc"),
        ("kubernetes.default.svc.cluster.local", "kubernetes.default.svc.cluster.local"),
        ("x.default.svcx.cluster.local", "x.default.svcx.cluster.local"),
        ("x.defaults.svc.cluster.local", "x.defaults.svc.cluster.local"),
        ("x.nodefault.svc.cluster.local", "x.nodefault.svc.cluster.local"),
        ("http://a.default.svc:80/default", "http://a.prod.svc:80/default"),
    ],
)
def test_rewrite_namespace_only_in_cluster_names(text: str, expected: str) -> None:
    assert rewrite_namespace(text, PROD) == expected


def test_rewrite_keeps_permissions_and_reports_written(tmp_path: Path) -> None:
    src = _tree(tmp_path / "in", {"c.json": '{"a": "x.default.svc.cluster.local"}'})
    os.chmod(src / "c.json", 0o600)
    result = render_directory(src, tmp_path / "out", {}, rewrite=PROD)
    assert result.written == ["c.json"]
    assert stat.S_IMODE((tmp_path / "out/c.json").stat().st_mode) == 0o600


def test_printing_a_python_object_is_an_error(tmp_path: Path) -> None:
    """``{{ dict }}`` or ``{{ vars.items }}`` would write ``<class 'dict'>`` or a method's
    repr into the config: refused, named with file and line, nothing written."""
    src = _tree(tmp_path / "in", {
        "a.j2": "{{ dict }}",
        "b.j2": "ok\n{{ vars.items }}",
        "c.j2": "{{ vars.items() | list | length }} {{ peers | length }}",
    })
    with pytest.raises(RenderError) as info:
        render_directory(src, tmp_path / "out", CONTEXT)
    problems = info.value.problems
    assert len(problems) == 2, problems
    assert problems[0].startswith("a.j2:1: ") and "prints a Python object (type)" in problems[0]
    assert problems[1].startswith("b.j2:2: ") and "prints a Python object" in problems[1]
    assert not (tmp_path / "out").exists()
