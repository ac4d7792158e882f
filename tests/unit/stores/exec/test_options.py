"""The exec hooks' settings: RSS's commands block as JSON, Go durations, every problem named."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from agent.config.loading import load_settings
from agent.errors import ConfigError
from agent.stores.exec.options import ExecHooks, HookSpec, go_duration


@pytest.mark.parametrize(("text", "seconds"), [
    ("60s", 60.0), ("1m30s", 90.0), ("500ms", 0.5), ("1h", 3600.0), ("2.5s", 2.5),
    ("10", 10.0), (" 3s ", 3.0), ("1h1m1s", 3661.0)])
def test_go_durations(text: str, seconds: float) -> None:
    assert go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "s", "60x", "1m 30s", "-5s", "5s!", "forever"])
def test_what_is_no_duration_is_named(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        go_duration(text)


RSS = {"sequence": {"command": ["/sequence.sh"]}, "primary": {"command": ["/start.sh"]},
       "seed": {"command": ["/seed.sh"]}, "status": {"timeout": "60s", "command": ["/check.sh"]},
       "stop": {"command": ["/stop.sh"]}}


def test_the_rss_example_s_commands_parse_unchanged() -> None:
    hooks = ExecHooks.model_validate(RSS)
    assert hooks.status.timeout == 60.0 and hooks.sequence.timeout == 60.0
    assert hooks.start_hook("seed").command == ["/seed.sh"]
    assert hooks.start_hook("secondary").command == ["/start.sh"]  # falls back to primary
    assert hooks.members is None and hooks.secondary is None


def test_an_empty_program_is_refused() -> None:
    with pytest.raises(ValidationError, match="empty"):
        HookSpec(command=[" "])


def _problems(environ: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as caught:
        load_settings("run", {}, environ)
    return caught.value.problems


def test_every_problem_is_named_where_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = {**RSS, "status": {"command": ["/check.sh"], "timeout": "soon"},
              "stop": {"comand": ["/stop.sh"]}}
    del broken["seed"]
    problems = _problems({"AGENT_BACKEND": "exec", "AGENT_EXEC_HOOKS": json.dumps(broken)},
                         monkeypatch)
    joined = "\n".join(problems)
    assert "AGENT_EXEC_HOOKS (--exec-hooks): at seed: Field required" in joined
    assert "at status.timeout: 'soon' is not a duration" in joined
    assert "at stop.comand: no such name here (misspelt?)" in joined
    assert "at stop.command: Field required" in joined


def test_an_exec_store_needs_its_hooks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENT_EXEC_HOOKS", raising=False)
    problems = _problems({"AGENT_BACKEND": "exec"}, monkeypatch)
    assert problems == ["AGENT_EXEC_HOOKS (--exec-hooks): exec needs its hooks (sequence, "
                        "seed, primary, status at least)"]


def test_hooks_that_are_no_json_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    problems = _problems({"AGENT_BACKEND": "exec", "AGENT_EXEC_HOOKS": "{sequence: x"},
                         monkeypatch)
    assert len(problems) == 1 and problems[0].startswith("AGENT_EXEC_HOOKS")
