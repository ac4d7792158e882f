"""The history recorder: what each ending keeps, the checker's JSON, many threads at once,
and the verdict read back (the checker itself runs in the integration tier)."""

from __future__ import annotations

import itertools
import json
import threading

import pytest

from player.history import History, Operation, Verdict


def ticking() -> History:
    """A history whose clock advances 10 ns a reading."""
    ticks = itertools.count(0, 10)
    return History(clock=lambda: next(ticks))


def test_each_ending_keeps_what_the_checker_needs() -> None:
    history = ticking()
    acknowledged = history.invoke(0, "write", "r/0", "1")      # call 0
    history.ok(acknowledged)                                   # return 10
    refused = history.invoke(0, "write", "r/0", "2")           # call 20
    history.fail(refused)
    timed_out = history.invoke(0, "write", "r/0", "3")         # call 30
    history.info(timed_out)
    read = history.invoke(1, "read", "r/0")                    # call 40
    history.ok(read, "3")                                      # return 50
    absent = history.invoke(1, "read", "r/1")                  # call 60
    history.ok(absent, None)                                   # return 70
    failed_read = history.invoke(1, "read", "r/0")             # call 80
    history.info(failed_read)
    assert history.operations() == [
        Operation(0, "write", "r/0", "1", 0, 10),
        Operation(0, "write", "r/0", "3", 30, None),           # may or may not have happened
        Operation(1, "read", "r/0", "3", 40, 50),
        Operation(1, "read", "r/1", None, 60, 70),
    ]


def test_json_is_the_checkers_format() -> None:
    history = ticking()
    history.ok(history.invoke(2, "write", "w/000001", "1"))
    history.info(history.invoke(2, "write", "w/000002", "2"))
    history.ok(history.invoke(3, "read", "w/000001"), "1")
    assert json.loads(history.to_json()) == [
        {"client": 2, "kind": "write", "key": "w/000001", "value": "1", "call": 0,
         "return": 10},
        {"client": 2, "kind": "write", "key": "w/000002", "value": "2", "call": 20,
         "return": None},
        {"client": 3, "kind": "read", "key": "w/000001", "value": "1", "call": 30,
         "return": 40},
    ]


def test_pending_writes_count_as_unknown_and_pending_reads_as_nothing() -> None:
    history = ticking()
    history.invoke(0, "write", "r/0", "1")
    history.invoke(1, "read", "r/0")
    assert history.operations() == [Operation(0, "write", "r/0", "1", 0, None)]


def test_an_operation_ends_once() -> None:
    history = ticking()
    handle = history.invoke(0, "write", "r/0", "1")
    history.ok(handle)
    with pytest.raises(ValueError, match="not pending"):
        history.info(handle)


@pytest.mark.parametrize(("kind", "value"), [("write", None), ("read", "1")])
def test_a_write_has_a_value_and_a_read_none(kind: str, value: str | None) -> None:
    with pytest.raises(ValueError, match="a write has a value"):
        History().invoke(0, kind, "r/0", value)  # type: ignore[arg-type]


def test_a_write_returns_no_value() -> None:
    history = History()
    with pytest.raises(ValueError, match="returns no value"):
        history.ok(history.invoke(0, "write", "r/0", "1"), "1")


def test_threads_record_every_operation_in_its_own_order() -> None:
    history = History()
    clients, each = 8, 500

    def client(number: int) -> None:
        for i in range(each):
            handle = history.invoke(number, "write", f"r/{number}", str(i))
            (history.ok if i % 2 else history.info)(handle)
            history.ok(history.invoke(number, "read", f"r/{number}"), str(i))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    operations = history.operations()
    assert len(operations) == clients * each * 2
    for number in range(clients):
        mine = [op for op in operations if op.client == number]
        assert [op.value for op in mine if op.kind == "read"] == [str(i) for i in range(each)]
        # One client is sequential: each operation is called after the last returned.
        returns = [op.returned for op in mine if op.returned is not None]
        calls = [op.call for op in mine if op.returned is not None]
        assert all(returned <= call for returned, call in zip(returns[:-1], calls[1:], strict=True))


def test_verdict_reads_the_checkers_answer_and_explains_the_window() -> None:
    answer = {
        "result": "illegal", "operations": 7, "keys": 2, "unknown_outcomes": 1,
        "illegal_keys": ["r/0"],
        "window": {"key": "r/0", "minimal": True, "ops": [
            {"client": 0, "kind": "write", "key": "r/0", "value": "1", "call": 1_000_000,
             "return": 2_000_000},
            {"client": 0, "kind": "write", "key": "r/0", "value": "2", "call": 3_000_000,
             "return": None},
            {"client": 1, "kind": "read", "key": "r/0", "value": None, "call": 4_000_000,
             "return": 4_500_000},
        ]},
    }
    verdict = Verdict.from_json(answer, history_path="/tmp/history.json")
    assert not verdict.ok
    assert verdict.illegal_keys == ("r/0",) and verdict.window_key == "r/0"
    assert verdict.window[1] == Operation(0, "write", "r/0", "2", 3_000_000, None)
    explained = verdict.explain()
    assert "linearizability: illegal (7 operations on 2 keys, 1 of unknown outcome)" \
        in explained
    assert "write r/0 = '1'" in explained and "[0.000, 1.000]" in explained
    assert "unknown outcome" in explained
    assert "read r/0 -> (absent)" in explained and "[3.000, 3.500]" in explained
    assert "history: /tmp/history.json" in explained


def test_an_ok_verdict_explains_itself_in_a_line() -> None:
    verdict = Verdict.from_json({"result": "ok", "operations": 3, "keys": 1})
    assert verdict.ok
    assert verdict.explain() == ("linearizability: ok (3 operations on 1 keys, 0 of "
                                 "unknown outcome)")
