"""The configuration reference (docs/configuration.md) and the chart's agent.settings names
match the Settings model."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_config_reference_is_current() -> None:
    spec = importlib.util.spec_from_file_location("config_reference",
                                                  ROOT / "scripts/config_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    readme = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert module.replace_section(readme) == readme, "run `make docs`"
    schema = (ROOT / "charts/sts-agent/values.schema.json").read_text(encoding="utf-8")
    assert module.replace_chart_settings(schema) == schema, "run `make docs`"
