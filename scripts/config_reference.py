"""Generate the configuration reference (docs/configuration.md) and the chart's
agent.settings names from the settings models (shared, per store)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.config.loading import env_name, fields, flag_name, values_name

START = "<!-- config-reference:start -->"
END = "<!-- config-reference:end -->"


def _default(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"`{value}`"


def markdown() -> str:
    """The reference table, one row per setting: the shared ones, then each store's own,
    in declaration order."""
    rows = [
        "| env | flag | default | meaning |",
        "|---|---|---|---|",
    ]
    for name, info in fields().items():
        description = (info.description or "").replace("|", "\\|")
        rows.append(
            f"| `{env_name(name)}` | `{flag_name(name)}` | {_default(info.default)} | "
            f"{description} |"
        )
    return "\n".join(rows) + "\n"


# What charts/sts-agent sets itself in the pod template: not taken from agent.settings.
CHART_OWNED = frozenset({"backend", "service", "bootstrap_expect", "templates_dir", "output_dir",
                         "data_dir", "store_username", "store_password_file", "store_url",
                         "termination_grace_period_seconds"})


def chart_settings() -> list[str]:
    """The names agent.settings takes: every AGENT_ setting but those the chart sets."""
    return [values_name(name) for name in fields()
            if env_name(name).startswith("AGENT_") and name not in CHART_OWNED]


def replace_chart_settings(text: str) -> str:
    """The chart's values.schema.json ``text`` with agent.settings' names made current."""
    schema = json.loads(text)
    settings = schema["properties"]["agent"]["properties"]["settings"]
    settings["propertyNames"] = {"enum": chart_settings()}
    return json.dumps(schema, indent=2) + "\n"


def replace_section(text: str) -> str:
    """``text`` with the part between the markers replaced by the current table."""
    head, start, rest = text.partition(START)
    _, end, tail = rest.partition(END)
    if not start or not end:
        raise SystemExit(f"markers {START} / {END} not found")
    return f"{head}{START}\n{markdown()}{END}{tail}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", type=Path, help="file whose marked section to replace")
    parser.add_argument("--chart-schema", type=Path,
                        help="a chart's values.schema.json whose agent.settings names to replace")
    args = parser.parse_args()
    if args.chart_schema is not None:
        schema: Path = args.chart_schema
        schema.write_text(replace_chart_settings(schema.read_text(encoding="utf-8")),
                          encoding="utf-8")
    if args.write is None:
        if args.chart_schema is None:
            sys.stdout.write(markdown())
        return 0
    path: Path = args.write
    path.write_text(replace_section(path.read_text(encoding="utf-8")), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
