"""RSS's exit codes and sequence as the agent reads them."""

from __future__ import annotations

import pytest

from agent.stores.exec.contract import HookResult, Role, SequenceError, parse_sequence, role_of


def result(code: int | None, stdout: str = "", stderr: str = "",
           error: str | None = None) -> HookResult:
    return HookResult("status", ("/check.sh", "a"), code, stdout, stderr, 0.1, error)


@pytest.mark.parametrize(("code", "role"), [
    (0, Role.SECONDARY), (7, Role.STOPPED), (8, Role.PRIMARY), (1, Role.FAILED),
    (2, Role.FAILED), (9, Role.FAILED), (-15, Role.FAILED), (None, Role.FAILED)])
def test_status_exit_codes_are_rss_s(code: int | None, role: Role) -> None:
    assert role_of(result(code)) is role


def test_a_hook_that_did_not_end_by_itself_failed_whatever_its_code() -> None:
    assert role_of(result(8, error="timed out after 5 s")) is Role.FAILED


@pytest.mark.parametrize(("stdout", "value"), [("42\n", 42), (" 0 ", 0), ("18446744073709551615",
                                                                       2**64 - 1)])
def test_a_sequence_is_an_unsigned_integer(stdout: str, value: int) -> None:
    assert parse_sequence(result(0, stdout)) == value


@pytest.mark.parametrize("stdout", ["", "-1", "4 2", "0x10", "seqno: 4", "١٢", "4\n5", "nan"])
def test_anything_else_is_no_sequence_and_says_what_it_printed(stdout: str) -> None:
    with pytest.raises(SequenceError, match="not an unsigned integer"):
        parse_sequence(result(0, stdout))


def test_a_failed_sequence_names_the_hook_and_its_error_output() -> None:
    with pytest.raises(SequenceError, match=r"status hook \(/check.sh a\) exited 3: disk gone"):
        parse_sequence(result(3, "12", "disk gone\n"))


def test_outcomes_and_reasons() -> None:
    assert result(0).outcome == result(7).outcome == result(8).outcome == "ok"  # status
    assert result(1).outcome == "failed"
    assert HookResult("stop", ("/stop.sh",), 7).outcome == "failed"
    assert result(None, error="timed out after 5 s (its process group killed)").outcome == "timeout"
    assert result(None, error="cannot run '/x': No such file").outcome == "error"
    long = result(1, stderr="line\n" * 1000)
    assert len(long.why()) < 400 and long.why().endswith("line")
    assert long.as_dict()["outcome"] == "failed"
