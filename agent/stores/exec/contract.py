"""The RSS operator's hook contract as values: exit codes, sequence, a hook's result (no I/O)."""

from __future__ import annotations

import enum
import shlex
from dataclasses import dataclass
from typing import Any

# Of a hook's output, what /status, logs and reasons keep (the end: where errors are).
TAIL = 2000
# RSS's status exit codes.
STATUS_SECONDARY, STATUS_STOPPED, STATUS_PRIMARY = 0, 7, 8
STATUS_ANSWERS = (STATUS_SECONDARY, STATUS_STOPPED, STATUS_PRIMARY)


class Role(enum.StrEnum):
    """What ``status`` says of the node."""

    PRIMARY = "primary"
    SECONDARY = "secondary"
    STOPPED = "stopped"
    FAILED = "failed"

    @property
    def running(self) -> bool:
        return self in (Role.PRIMARY, Role.SECONDARY)


@dataclass(frozen=True, slots=True)
class HookResult:
    """One run of a hook. ``exit_code`` None: it did not end by itself (timed out and
    killed) or could not be started (``error`` says which)."""

    hook: str
    argv: tuple[str, ...]
    exit_code: int | None
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0
    error: str | None = None  # "timed out after 5 s", "cannot run ...: No such file"
    pid: int | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def outcome(self) -> str:
        """The metric label: ok, failed (a non-zero exit; for ``status``, any but its
        answers 0, 7 and 8), timeout or error."""
        if self.error is not None:
            return "timeout" if self.exit_code is None and "timed out" in self.error else "error"
        if self.hook == "status":
            return "ok" if self.exit_code in STATUS_ANSWERS else "failed"
        return "ok" if self.ok else "failed"

    def why(self) -> str:
        """What went wrong, naming the hook, for reasons and logs."""
        if self.error is not None:
            said = self.error
        else:
            said = f"exited {self.exit_code}"
        text = tail(self.stderr) or tail(self.stdout)
        return f"{self.hook} hook ({shlex.join(self.argv)}) {said}" + (f": {text}" if text else "")

    def as_dict(self) -> dict[str, Any]:
        return {"hook": self.hook, "argv": list(self.argv), "exit_code": self.exit_code,
                "outcome": self.outcome, "seconds": round(self.seconds, 3),
                "error": self.error, "stdout": tail(self.stdout, TAIL),
                "stderr": tail(self.stderr, TAIL)}


def tail(text: str, limit: int = 300) -> str:
    """The last ``limit`` characters of ``text``, its lines joined by " | "."""
    joined = " | ".join(line.strip() for line in text.strip().splitlines() if line.strip())
    return joined if len(joined) <= limit else "…" + joined[-limit:]


def role_of(result: HookResult) -> Role:
    """RSS's ``status`` exit codes: 0 secondary, 7 stopped, 8 primary, anything else
    (and a hook that timed out or could not run) failed."""
    if result.error is not None or result.exit_code is None:
        return Role.FAILED
    return {STATUS_SECONDARY: Role.SECONDARY, STATUS_STOPPED: Role.STOPPED,
            STATUS_PRIMARY: Role.PRIMARY}.get(result.exit_code, Role.FAILED)


class SequenceError(ValueError):
    """``sequence`` gave no usable number; the message says why."""


def parse_sequence(result: HookResult) -> int:
    """The unsigned integer ``sequence`` printed (its only output, whitespace aside);
    SequenceError naming the hook's failure or what it printed instead."""
    if not result.ok:
        raise SequenceError(result.why())
    text = result.stdout.strip()
    if not text.isdigit() or not text.isascii():
        shown = text if len(text) <= 80 else text[:80] + "…"
        raise SequenceError(f"sequence hook ({shlex.join(result.argv)}) printed {shown!r}, "
                            "not an unsigned integer")
    return int(text)
