"""The linearizability checker (checker/, Porcupine) on histories made to be linearizable
or not, and on the Writer's own history of an in-memory store, exact or stale."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import player.writer
from player.history import History
from player.peers import checker_binary
from player.wait import wait_until
from player.writer import Writer
from tests.conftest import required

pytestmark = pytest.mark.integration

MS = 1_000_000  # the history's times are nanoseconds


@pytest.fixture(scope="module")
def checker() -> str:
    """The built checker; its absence fails under CI=true, else skips."""
    return required(checker_binary)


def op(client: int, kind: str, key: str, value: str | None, call: int,
       returned: int | None) -> dict[str, Any]:
    """An operation, its times in ms."""
    return {"client": client, "kind": kind, "key": key, "value": value, "call": call * MS,
            "return": None if returned is None else returned * MS}


def check(checker: str, tmp_path: Path, history: object,
          *options: str) -> tuple[int, dict[str, Any]]:
    path = tmp_path / "history.json"
    path.write_text(history if isinstance(history, str) else json.dumps(history))
    done = subprocess.run([checker, *options, str(path)], capture_output=True, text=True,
                          timeout=120, check=False)
    return done.returncode, json.loads(done.stdout)


def test_a_linearizable_history(checker: str, tmp_path: Path) -> None:
    code, answer = check(checker, tmp_path, [
        op(1, "read", "r/0", None, 0, 1),               # never written: absent
        op(0, "write", "r/0", "1", 2, 3),
        op(1, "read", "r/0", "1", 4, 5),
        op(0, "write", "r/1", "1", 6, 7),
        op(0, "write", "r/0", "2", 8, 9),
        op(1, "read", "r/1", "1", 10, 11),
        op(1, "read", "r/0", "2", 10, 11),
    ])
    assert (code, answer) == (0, {"result": "ok", "operations": 7, "keys": 2,
                                  "unknown_outcomes": 0})


def test_a_stale_read_after_an_acknowledged_write(checker: str, tmp_path: Path) -> None:
    code, answer = check(checker, tmp_path, [
        op(0, "write", "r/0", "1", 0, 1),
        op(1, "read", "r/0", "1", 2, 3),
        op(0, "write", "r/1", "7", 2, 3),
        op(0, "write", "r/0", "2", 4, 5),               # acknowledged at 5
        op(1, "read", "r/1", "7", 6, 7),
        op(1, "read", "r/0", "1", 6, 7),                # yet 1 is read after it
        op(1, "read", "r/0", "2", 8, 9),
    ])
    assert code == 1 and answer["result"] == "illegal"
    assert answer["illegal_keys"] == ["r/0"]
    window = answer["window"]
    assert window["key"] == "r/0" and window["minimal"]
    assert window["ops"] == [op(0, "write", "r/0", "1", 0, 1), op(0, "write", "r/0", "2", 4, 5),
                             op(1, "read", "r/0", "1", 6, 7)]


def test_a_read_may_see_a_write_of_unknown_outcome(checker: str, tmp_path: Path) -> None:
    code, answer = check(checker, tmp_path, [
        op(0, "write", "r/0", "1", 0, 1),
        op(0, "write", "r/0", "2", 2, None),            # timed out: it took effect...
        op(1, "read", "r/0", "2", 50, 51),              # ...long after its client gave up
        op(0, "write", "w/1", "1", 3, None),            # timed out, and it did not
        op(1, "read", "w/1", None, 60, 61),
        op(0, "write", "w/2", "2", 4, None),            # retried through another pod
        op(0, "write", "w/2", "2", 5, 6),
        op(1, "read", "w/2", "2", 70, 71),
    ])
    assert (code, answer["result"], answer["unknown_outcomes"]) == (0, "ok", 3)


def test_a_write_seen_has_happened(checker: str, tmp_path: Path) -> None:
    code, answer = check(checker, tmp_path, [
        op(0, "write", "r/0", "1", 0, 1),
        op(0, "write", "r/0", "2", 2, None),
        op(1, "read", "r/0", "2", 3, 4),
        op(1, "read", "r/0", "1", 5, 6),                # 2 was seen: 1 is gone for good
    ])
    assert code == 1
    assert [(o["value"], o["return"]) for o in answer["window"]["ops"]] == [
        ("1", 1 * MS), ("2", None), ("2", 4 * MS), ("1", 6 * MS)]


def test_concurrent_operations(checker: str, tmp_path: Path) -> None:
    code, answer = check(checker, tmp_path, [
        op(0, "write", "r/0", "1", 0, 10),
        op(1, "write", "r/0", "2", 1, 12),
        op(2, "read", "r/0", "2", 2, 4),                # 2 took effect first...
        op(3, "read", "r/0", "1", 5, 15),               # ...then 1
        op(2, "read", "r/0", "1", 16, 17),
        op(4, "read", "r/0", None, 0, 3),               # before both
    ])
    assert (code, answer["result"]) == (0, "ok")


def test_concurrent_reads_that_disagree_on_the_order(checker: str, tmp_path: Path) -> None:
    code, answer = check(checker, tmp_path, [
        op(0, "write", "r/0", "1", 0, 10),
        op(1, "write", "r/0", "2", 0, 10),
        op(2, "read", "r/0", "1", 11, 12),              # after both writes, 1 was last...
        op(3, "read", "r/0", "2", 13, 14),              # ...and then 2
    ])
    assert (code, answer["illegal_keys"]) == (1, ["r/0"])


def test_the_time_limit_is_unknown(checker: str, tmp_path: Path) -> None:
    history = [op(i % 4, "write", "r/0", str(i), i, i + 3) for i in range(50_000)]
    code, answer = check(checker, tmp_path, history, "-timeout=1ns")
    assert (code, answer["result"]) == (3, "unknown")


@pytest.mark.parametrize(("history", "error"), [
    ("[{", "not a JSON list of operations"),
    ('{"kind": "read"}', "not a JSON list of operations"),
    ([op(0, "delete", "r/0", None, 0, 1)], 'kind "delete"'),
    ([op(0, "write", "r/0", None, 0, 1)], "a write without a value"),
    ([op(0, "read", "r/0", "1", 0, None)], "a read without a return time"),
    ([op(0, "read", "r/0", "1", 5, 1)], "returns before its call"),
    ([{**op(0, "read", "r/0", "1", 0, 1), "extra": 1}], "unknown field"),
])
def test_a_bad_history(checker: str, tmp_path: Path, history: object, error: str) -> None:
    code, answer = check(checker, tmp_path, history)
    assert code == 2 and answer["result"] == "error" and error in answer["error"]


def test_history_check_keeps_a_failing_history(checker: str) -> None:
    history = History()
    history.ok(history.invoke(0, "write", "r/3", "1"))
    history.ok(history.invoke(0, "write", "r/3", "2"))
    history.ok(history.invoke(1, "read", "r/3"), "1")
    verdict = history.check(timeout=10, binary=checker)
    assert not verdict.ok and verdict.window_key == "r/3"
    assert verdict.history_path is not None and Path(verdict.history_path).exists()
    assert "smallest failing window on r/3 (3 operations" in verdict.explain()
    Path(verdict.history_path).unlink()


def test_history_check_of_a_linearizable_history(checker: str) -> None:
    history = History()
    history.ok(history.invoke(0, "write", "r/0", "1"))
    history.ok(history.invoke(1, "read", "r/0"), "1")
    verdict = history.check(timeout=10, binary=checker)
    assert verdict.ok and (verdict.operations, verdict.keys) == (2, 1)
    assert verdict.history_path is None


class MemoryKv:
    """A linearizable in-memory store behind three "pods"; ``lagging`` serves reads from
    a copy 0.3 s behind, and ``flaky`` loses some requests before or after applying."""

    def __init__(self, *, lagging: str | None = None, flaky: bool = False) -> None:
        self.data: dict[str, str] = {}
        self.copy: dict[str, str] = {}
        self.copied = time.monotonic()
        self.lock = threading.Lock()
        self.lagging, self.flaky = lagging, flaky
        self.requests = 0

    def put(self, url: str, key: str, value: str) -> bool:
        with self.lock:
            self.requests += 1
            if self.flaky and self.requests % 7 == 0:
                raise httpx.ConnectError("refused")         # never reached the store
            self.data[key] = value
            if time.monotonic() - self.copied > 0.3:
                self.copy, self.copied = dict(self.data), time.monotonic()
            if self.flaky and self.requests % 5 == 0:
                raise httpx.ReadTimeout("no answer")        # applied, not acknowledged
            return not (self.flaky and self.requests % 11 == 0)  # applied, refused

    def get(self, url: str, key: str) -> str | None:
        with self.lock:
            return (self.copy if url == self.lagging else self.data).get(key)

    def read_prefix(self, url: str, prefix: str) -> dict[str, str]:
        with self.lock:
            return {k: v for k, v in self.data.items() if k.startswith(prefix)}


def run_writer(monkeypatch: pytest.MonkeyPatch, store: MemoryKv) -> Writer:
    monkeypatch.setattr(player.writer, "kv_client", lambda name, http: store)
    writer = Writer("etcd", lambda: ["http://a", "http://b", "http://c"]).start()
    # Each register written and read back a few times (the reader's pace: ten rounds a
    # second), and the writer's keys with them.
    wait_until(lambda: sum(o.kind == "read" and o.key.startswith("r/")
                           for o in writer.history.operations()) >= 40,
               what="40 reads of the registers", timeout=30)
    writer.stop()
    return writer


@pytest.mark.parametrize("flaky", [False, True])
def test_the_writers_history_of_a_linearizable_store(checker: str, flaky: bool,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    writer = run_writer(monkeypatch, MemoryKv(flaky=flaky))
    operations = writer.history.operations()
    assert {o.key for o in operations} >= {f"r/{i}" for i in range(5)}
    assert any(o.kind == "read" and o.key.startswith("w/") for o in operations)
    assert any(o.returned is None for o in operations) == flaky
    verdict = writer.history.check(timeout=30, binary=checker)
    assert verdict.ok, verdict.explain()
    assert writer.lost("http://a") == []


def test_the_writers_history_of_a_stale_pod(checker: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    writer = run_writer(monkeypatch, MemoryKv(lagging="http://b"))
    verdict = writer.history.check(timeout=30, binary=checker)
    assert verdict.result == "illegal", verdict.explain()
    # Reads through the lagging pod miss recent writes: of registers, of the newest w/ key.
    assert verdict.window_key in verdict.illegal_keys
    assert [o.kind for o in verdict.window].count("read") >= 1
    assert verdict.history_path is not None
    Path(verdict.history_path).unlink()
