"""The static tier's tools: a tool from the virtualenvs (missing: a failure under CI), and the
security scanner's verdict on a rendered manifest."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import missing

ROOT = Path(__file__).resolve().parents[2]


def need(tool: str) -> str:
    found = shutil.which(tool, path=os.pathsep.join(
        [str(Path(sys.executable).parent), str(ROOT / ".venv-lint" / "bin")]))
    if found:
        return found
    missing(f"{tool} is not installed (scripts/setup.sh installs it)")


def assert_scanned_clean(manifest: Path) -> None:
    """checkov finds nothing in ``manifest`` but what its annotations skip, each with its
    reason beside it."""
    checkov = need("checkov")
    result = subprocess.run(
        [checkov, "--file", str(manifest), "--framework", "kubernetes", "--skip-download",
         "--output", "json"], capture_output=True, text=True,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "LOG_LEVEL": "ERROR"})
    report = json.loads(result.stdout)
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert failed == [], failed
    assert report["summary"]["passed"] > 50
    assert report["summary"]["skipped"] == len(report["results"].get("skipped_checks", []))
    # Every suppression carries its reason next to it, in the manifest's annotations.
    reasons = {}
    for document in yaml.safe_load_all(manifest.read_text()):
        for key, value in ((document or {}).get("metadata", {}).get("annotations") or {}
                           ).items():
            if key.startswith("checkov.io/skip"):
                check_id, _, reason = str(value).partition("=")
                reasons[check_id.strip()] = reason.strip()
    for check in report["results"].get("skipped_checks", []):
        assert len(reasons.get(check["check_id"], "")) > 20, check["check_id"]
