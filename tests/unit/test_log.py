"""Logging: JSON lines off a TTY, each with pod, namespace, level and event keys."""

from __future__ import annotations

import json

import pytest
import structlog

from agent import log


def test_json_lines_carry_pod_and_namespace(capsys: pytest.CaptureFixture[str]) -> None:
    log.configure(fmt="json", pod="db-2", namespace="prod")
    structlog.get_logger("t").info("member_seen", member="db-0", took_ms=3)
    structlog.get_logger("t").debug("hidden")
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["event"] == "member_seen"
    assert record["member"] == "db-0" and record["took_ms"] == 3
    assert record["pod"] == "db-2" and record["namespace"] == "prod"
    assert record["level"] == "info" and "timestamp" in record


def test_console_format_and_level(capsys: pytest.CaptureFixture[str]) -> None:
    log.configure(fmt="console", level="debug", pod="db-0", namespace="ns")
    structlog.get_logger("t").debug("detail", key="v")
    err = capsys.readouterr().err
    assert "detail" in err and "key=v" in err and "pod=db-0" in err
