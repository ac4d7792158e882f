"""An open-loop writer: writes at a fixed rate whatever the store does, each timed from
when it was due, so a stall shows as latency and gaps instead of slowing the client."""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

from player.stores.base import Kv

# Writes in flight at most; beyond it writes queue, and their latency counts the queue.
IN_FLIGHT = 64


@dataclass(frozen=True, slots=True)
class Write:
    """One write: when it was due and when its answer came (monotonic seconds); for a
    failed one, why: the node it went to and what came back."""

    due: float
    done: float
    ok: bool
    why: str = ""

    @property
    def latency(self) -> float:
        return self.done - self.due


@dataclass(frozen=True, slots=True)
class Window:
    """What the writes due within one operation saw."""

    writes: int
    failed: int
    longest_gap: float  # longest time without an acknowledged write, seconds
    gap_from: float  # when that stretch began (monotonic seconds): the logs' moment to read
    p50: float  # latency of the acknowledged writes, seconds
    p99: float
    # Why writes failed, most frequent first: "<node>: <what came back>" and a count.
    reasons: tuple[tuple[str, int], ...] = ()


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def window(writes: list[Write], start: float, end: float) -> Window:
    """The writes due in [start, end): how many, how many failed, their latency, and the
    longest stretch of [start, end) in which no write was acknowledged."""
    due = [w for w in writes if start <= w.due < end]
    acked = sorted(w.done for w in writes if w.ok)
    gap, gap_from, last = 0.0, start, start
    for done in acked:
        if done < start:
            continue
        if done - last > gap:
            gap, gap_from = done - last, last
        if done >= end:
            break  # the stretch ends at the first ack after the end
        last = done
    else:
        if end - last > gap:
            gap, gap_from = end - last, last
    latencies = [w.latency for w in due if w.ok]
    reasons = Counter(w.why for w in due if not w.ok)
    return Window(writes=len(due), failed=sum(1 for w in due if not w.ok),
                  longest_gap=gap, gap_from=gap_from, p50=percentile(latencies, 0.50),
                  p99=percentile(latencies, 0.99), reasons=tuple(reasons.most_common()))


class OpenLoopWriter:
    """Writes ``d/<n>`` at ``rate`` a second through the ready pods in turn (``urls``,
    read again every tenth of a second as endpoints would be), one attempt each with a
    ``timeout``: what a client of the client Service sees."""

    def __init__(self, kv: Callable[[httpx.Client], Kv], urls: Callable[[], list[str]], *,
                 rate: float = 100.0, timeout: float = 2.0,
                 auth: tuple[str, str] | None = None) -> None:
        self._make_kv = kv
        self._urls_source = urls
        self.rate = rate
        self.timeout = timeout
        self.auth = auth
        self.writes: list[Write] = []
        self._urls: list[str] = []
        self._stop = threading.Event()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(IN_FLIGHT, thread_name_prefix="openloop")
        self._threads = [threading.Thread(target=self._schedule, name="openloop-clock",
                                          daemon=True),
                         threading.Thread(target=self._refresh, name="openloop-endpoints",
                                          daemon=True)]

    def start(self) -> OpenLoopWriter:
        self._urls = self._urls_source()
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)
        self._pool.shutdown(wait=True)

    def _refresh(self) -> None:
        while not self._stop.wait(0.1):
            try:
                self._urls = self._urls_source()
            except Exception:  # the last list stays until the API answers again
                continue

    def _schedule(self) -> None:
        begun = time.monotonic()
        for n in itertools.count():
            due = begun + n / self.rate
            if self._stop.wait(max(0.0, due - time.monotonic())):
                return
            self._pool.submit(self._write, n, due)

    def _kv(self) -> Kv:
        kv: Kv | None = getattr(self._local, "kv", None)
        if kv is None:
            kv = self._make_kv(httpx.Client(timeout=self.timeout, trust_env=False,
                                            auth=self.auth, follow_redirects=True))
            self._local.kv = kv
        return kv

    def _write(self, n: int, due: float) -> None:
        urls = self._urls
        ok, why = False, "no ready node in the list"
        if urls:
            url = urls[n % len(urls)]
            try:
                kv = self._kv()
                ok = kv.put(url, f"d/{n:07d}", str(n))
                why = "" if ok else f"{url}: refused {kv.refusal}".rstrip()
            except (httpx.HTTPError, ValueError) as exc:
                why = f"{url}: {type(exc).__name__}"
        with self._lock:
            self.writes.append(Write(due, time.monotonic(), ok, why))

    def snapshot(self) -> list[Write]:
        with self._lock:
            return list(self.writes)
