"""The docs site (mkdocs.yml, docs/) builds strictly — a broken link, anchor or include,
or a page left out of the nav, fails it — and the README stays a landing page."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.static.tools import ROOT, need

README_MOST_LINES = 150


def test_the_docs_site_builds_strictly(tmp_path: Path) -> None:
    mkdocs = need("mkdocs")
    result = subprocess.run(
        [mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=ROOT,
        capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    for page in ("index.html", "runbooks/index.html", "stores/etcd/index.html",
                 "configuration/index.html", "reliability/index.html"):
        assert (tmp_path / "site" / page).is_file(), page
    # The store pages carry their example's section of k8s/README.md.
    assert 'id="etcd-k8setcd"' in (tmp_path / "site/stores/etcd/index.html").read_text()


def test_the_readme_is_a_landing_page() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MOST_LINES
    assert "make demo" in "\n".join(lines) and "make test" in "\n".join(lines)
