"""Property tests: rendering never writes outside the output dir and never writes partially."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path, PurePosixPath

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.errors import RenderError
from agent.render import Output, Rewrite, render_directory, rewrite_namespace, write

SEGMENT = st.sampled_from(["a", "b", "..", ".", "", "c.conf", "sub", "/", "x y", "é"])
RELPATH = st.lists(SEGMENT, min_size=1, max_size=4).map(lambda parts: "/".join(parts))


def _all_files(root: Path) -> dict[str, bytes]:
    found = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath, name)
            found[str(path.relative_to(root))] = path.read_bytes()
    return found


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(relpaths=st.lists(RELPATH, min_size=1, max_size=5), link_sub=st.booleans())
def test_write_never_leaves_output_dir(relpaths: list[str], link_sub: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        outside = base / "outside"
        outside.mkdir()
        out = base / "box" / "out"
        out.mkdir(parents=True)
        if link_sub:
            (out / "sub").symlink_to(outside, target_is_directory=True)
        outputs = [Output(relpath=PurePosixPath(r), content=b"x", mode=0o644) for r in relpaths]
        try:
            write(out, outputs)
        except RenderError:
            # Refused: nothing at all was written.
            assert _all_files(out) == {}
        assert _all_files(outside) == {}
        assert sorted(p.name for p in (base / "box").iterdir()) == ["out"]
        assert sorted(p.name for p in base.iterdir()) == ["box", "outside"]


NAMES = st.sampled_from(["namespace", "pod_name", "peers", "ordinal", "nope", "other"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files=st.dictionaries(st.sampled_from(["a.j2", "b.j2", "sub/c.j2", "d.txt"]),
                             st.lists(NAMES, max_size=3), min_size=1))
def test_render_is_all_or_nothing(files: dict[str, list[str]]) -> None:
    context = {"namespace": "prod", "pod_name": "db-0", "peers": ["x"], "ordinal": 0}
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp, "in"), Path(tmp, "out")
        for relpath, names in files.items():
            path = src / relpath
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(" ".join("{{ " + n + " }}" for n in names))
        out.mkdir()
        (out / "a").write_text("previous")
        bad = {n for names in files.values() for n in names} - set(context)
        template_bad = any(
            set(names) - set(context) for relpath, names in files.items()
            if relpath.endswith(".j2")
        )
        try:
            render_directory(src, out, context)
        except RenderError as exc:
            assert template_bad and bad
            assert _all_files(out) == {"a": b"previous"}
            for problem in exc.problems:
                assert "unknown variable" in problem
        else:
            assert not template_bad
            expected = {r.removesuffix(".j2") for r in files} | {"a"}
            assert set(_all_files(out)) == expected


LABEL = st.from_regex(r"[a-z][a-z0-9-]{0,8}[a-z0-9]", fullmatch=True)
TEXT = st.text(alphabet=st.sampled_from(list("abc.-_:/\" default.svc")), max_size=60)


@given(text=TEXT)
def test_rewrite_without_cluster_names_is_identity(text: str) -> None:
    if ".default.svc" not in text:
        assert rewrite_namespace(text, Rewrite("default", "prod", "cluster.local")) == text


@given(pod=LABEL, svc=LABEL, prefix=TEXT, suffix=st.sampled_from(["", '"', ":80", " ", ","]))
def test_rewrite_is_idempotent_and_targets_names(pod: str, svc: str, prefix: str,
                                                  suffix: str) -> None:
    rewrite = Rewrite("default", "prod", "k8s.example")
    name = f"{pod}.{svc}.default.svc.cluster.local"
    text = f"{prefix} {name}{suffix}"
    once = rewrite_namespace(text, rewrite)
    assert rewrite_namespace(once, rewrite) == once
    if svc != "kubernetes" or pod:
        assert f" {pod}.{svc}.prod.svc.k8s.example{suffix}" in once
