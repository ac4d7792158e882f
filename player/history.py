"""Histories of a test's reads and writes, and their check for linearizability by the
Porcupine checker (checker/, built by scripts/build_peers.sh)."""

from __future__ import annotations

import itertools
import json
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NewType, cast

from player.peers import checker_binary

Kind = Literal["read", "write"]
Result = Literal["ok", "illegal", "unknown"]
Handle = NewType("Handle", int)

# The checker's exit status for each verdict; 2 is a history it could not read.
EXIT_RESULTS: dict[int, Result] = {0: "ok", 1: "illegal", 3: "unknown"}


class CheckerError(RuntimeError):
    """The checker could not read the history or did not answer."""


@dataclass(frozen=True)
class Operation:
    """One operation of a history, as the checker reads it. Times are time.monotonic_ns;
    a read's ``value`` is what it returned (None: the key was absent); ``returned`` is
    None when the outcome is unknown (a write that may or may not have taken effect)."""

    client: int
    kind: Kind
    key: str
    value: str | None
    call: int
    returned: int | None

    def to_json(self) -> dict[str, Any]:
        return {"client": self.client, "kind": self.kind, "key": self.key,
                "value": self.value, "call": self.call, "return": self.returned}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Operation:
        return cls(client=int(data["client"]), kind=cast(Kind, data["kind"]),
                   key=str(data["key"]), value=data["value"], call=int(data["call"]),
                   returned=data["return"])


@dataclass(frozen=True)
class _Invocation:
    client: int
    kind: Kind
    key: str
    value: str | None
    call: int


class History:
    """What clients (any number of threads) asked of a store and what came of it. Every
    operation is invoked, then ends once: ``ok`` (it took effect; a read returned
    ``value_read``), ``fail`` (it certainly did not take effect: left out) or ``info``
    (not known: a write stays in with no return time, a read tells nothing and is left
    out). Operations still pending when the history is read count as ``info``."""

    def __init__(self, clock: Callable[[], int] = time.monotonic_ns) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._handles = itertools.count()
        self._pending: dict[Handle, _Invocation] = {}
        self._done: list[Operation] = []

    def invoke(self, client: int, kind: Kind, key: str, value: str | None = None) -> Handle:
        """Record a call about to be made (a write of ``value``, or a read of ``key``)."""
        if (kind == "write") != (value is not None):
            raise ValueError(f"a {kind} of {key!r} with value {value!r}: a write has a "
                             "value, a read none")
        with self._lock:
            handle = Handle(next(self._handles))
            self._pending[handle] = _Invocation(client, kind, key, value, self._clock())
        return handle

    def ok(self, handle: Handle, value_read: str | None = None) -> None:
        """The operation took effect: a write was acknowledged, a read returned
        ``value_read`` (None: the key was absent)."""
        with self._lock:
            pending = self._pending.get(handle)
            if pending is not None and pending.kind == "write" and value_read is not None:
                raise ValueError("a write returns no value")  # and it stays pending
            call = self._end(handle)
            value = call.value if call.kind == "write" else value_read
            self._done.append(Operation(call.client, call.kind, call.key, value, call.call,
                                        self._clock()))

    def fail(self, handle: Handle) -> None:
        """The operation certainly did not take effect (refused before it was sent), or
        it is a read that returned nothing: it is left out."""
        with self._lock:
            self._end(handle)

    def info(self, handle: Handle) -> None:
        """The outcome is not known (a timeout, an error after the request may have
        reached the store): a write may take effect at any time after its call."""
        with self._lock:
            call = self._end(handle)
            if call.kind == "write":
                self._done.append(Operation(call.client, call.kind, call.key, call.value,
                                            call.call, None))

    def _end(self, handle: Handle) -> _Invocation:
        try:
            return self._pending.pop(handle)
        except KeyError:
            raise ValueError(f"operation {handle} is not pending (never invoked, or "
                             "already ended)") from None

    def operations(self) -> list[Operation]:
        """The history so far in call order: ended operations, and pending writes with
        their outcome unknown."""
        with self._lock:
            pending = [Operation(c.client, c.kind, c.key, c.value, c.call, None)
                       for c in self._pending.values() if c.kind == "write"]
            return sorted([*self._done, *pending], key=lambda op: op.call)

    def to_json(self) -> str:
        """The history as the checker reads it: a JSON list of operations."""
        return json.dumps([op.to_json() for op in self.operations()])

    def check(self, timeout: float = 60.0, *, path: Path | None = None,
              binary: str | None = None) -> Verdict:
        """Run the checker on the history so far. ``timeout`` (seconds) bounds the check
        and again the search for the smallest failing window. The history is written to
        ``path`` (default: a temporary file, removed when the history is linearizable).
        Raises player.peers.MissingBinary when the checker is not built, CheckerError
        when it does not answer."""
        binary = binary or checker_binary()
        keep = path is not None
        if path is None:
            with tempfile.NamedTemporaryFile("w", prefix="history-", suffix=".json",
                                             delete=False) as file:
                path = Path(file.name)
        path.write_text(self.to_json(), encoding="utf-8")
        try:
            done = subprocess.run([binary, f"-timeout={max(round(timeout * 1000), 1)}ms",
                                   str(path)],
                                  capture_output=True, text=True, timeout=2 * timeout + 30)
        except subprocess.TimeoutExpired as exc:
            raise CheckerError(f"the checker did not answer within {2 * timeout + 30:g} s "
                               f"(history: {path})") from exc
        if done.returncode not in EXIT_RESULTS:
            raise CheckerError(f"the checker exited {done.returncode} on {path}: "
                               f"{(done.stdout + done.stderr).strip()[:500]}")
        try:
            answer = json.loads(done.stdout)
        except ValueError as exc:
            raise CheckerError(f"the checker's answer is not JSON: {done.stdout[:500]!r}") \
                from exc
        if EXIT_RESULTS[done.returncode] == "ok" and not keep:
            path.unlink()
            return Verdict.from_json(answer)
        return Verdict.from_json(answer, history_path=str(path))


@dataclass(frozen=True)
class Verdict:
    """The checker's answer: ``result`` is ok, illegal (some key's operations cannot be
    linearized) or unknown (the time limit came first). When illegal, ``window`` is the
    smallest sub-history of ``window_key`` found that cannot be linearized on its own."""

    result: Result
    operations: int
    keys: int
    unknown_outcomes: int = 0
    illegal_keys: tuple[str, ...] = ()
    window_key: str | None = None
    window: tuple[Operation, ...] = ()
    minimal: bool = False  # no single operation can leave the window (the search ended)
    history_path: str | None = None  # kept unless the history is linearizable

    @property
    def ok(self) -> bool:
        return self.result == "ok"

    @classmethod
    def from_json(cls, answer: dict[str, Any], history_path: str | None = None) -> Verdict:
        """The checker's JSON verdict."""
        window = answer.get("window") or {}
        return cls(result=cast(Result, answer["result"]),
                   operations=int(answer["operations"]), keys=int(answer["keys"]),
                   unknown_outcomes=int(answer.get("unknown_outcomes", 0)),
                   illegal_keys=tuple(answer.get("illegal_keys") or ()),
                   window_key=window.get("key"),
                   window=tuple(Operation.from_json(op) for op in window.get("ops") or ()),
                   minimal=bool(window.get("minimal", False)), history_path=history_path)

    def window_text(self) -> str:
        """The failing window, one operation a line, times in ms from its first call."""
        if not self.window:
            return ""
        start = self.window[0].call
        lines = [f"smallest failing window on {self.window_key} ({len(self.window)} "
                 f"operations{'' if self.minimal else ', search cut short'}; ms from its "
                 "first call):"]
        for op in self.window:
            shown = "(absent)" if op.value is None else repr(op.value)
            what = f"write {op.key} = {shown}" if op.kind == "write" else \
                f"read {op.key} -> {shown}"
            returned = "unknown outcome" if op.returned is None else \
                f"{(op.returned - start) / 1e6:.3f}"
            lines.append(f"  client {op.client}  {what:<32} "
                         f"[{(op.call - start) / 1e6:.3f}, {returned}]")
        return "\n".join(lines)

    def explain(self) -> str:
        """A few lines for an assertion message."""
        head = (f"linearizability: {self.result} ({self.operations} operations on "
                f"{self.keys} keys, {self.unknown_outcomes} of unknown outcome)")
        if self.result == "unknown":
            head += "; the checker's time limit came first"
        lines = [head]
        if self.illegal_keys:
            shown = ", ".join(self.illegal_keys[:10])
            more = len(self.illegal_keys) - 10
            lines.append(f"keys that cannot be linearized: {shown}"
                         + (f" and {more} more" if more > 0 else ""))
        elif self.result == "illegal":
            lines.append("no key confirmed within the time limit")
        if self.window:
            lines.append(self.window_text())
        if self.history_path:
            lines.append(f"history: {self.history_path}")
        return "\n".join(lines)
