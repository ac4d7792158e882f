"""A client writing numbered keys through whichever pod is ready, counting what the store
acknowledged, and reading it all back at the end; it also times leaderless spells, and
records a history of its writes and linearizable reads for the linearizability checker."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import httpx

from player.history import History, Verdict
from player.stores import harness_class, kv_client
from player.wait import wait_until

if TYPE_CHECKING:
    from player.statefulset import StatefulSetPlayer
    from player.stores.base import Kv

# The history's clients: the thread writing w/<n>, and the one overwriting the registers
# and reading through the pods in turn.
WRITER, READER = 0, 1
# r/0 .. r/4, each overwritten with increasing values: reads of keys written again and
# again are what a stale or lost answer shows in (w/<n> is written once).
REGISTERS = 5
# Errors raised before a request was sent: the store never saw it.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# How old the ready pods' addresses may be when a write or a read picks one: a client
# behind a Service sees endpoints about this late too. Asked of the API server before
# every write and read (about 30 times a second), the list cost the host more CPU than
# the store's own work.
READY_URLS_SECONDS = 0.5


class Endpoints:
    """``urls()`` asked at most once every ``max_age`` seconds, shared by the writer's
    two threads; an error asking is raised to the caller, as without it."""

    def __init__(self, urls: Callable[[], list[str]], *,
                 max_age: float = READY_URLS_SECONDS) -> None:
        self._urls = urls
        self._max_age = max_age
        self._lock = threading.Lock()
        self._known: list[str] = []
        self._at = float("-inf")

    def __call__(self) -> list[str]:
        with self._lock:
            if time.monotonic() - self._at >= self._max_age:
                self._known = self._urls()
                self._at = time.monotonic()
            return list(self._known)


class Writer:
    """Writes ``w/<n>`` through the store's key-value client (player.stores) in a thread;
    a second thread (unless ``reads`` is False) writes the registers ``r/<i>`` and reads
    them and the newest ``w/<n>`` linearizably, each time through another ready pod. Both
    record what they did in ``history``."""

    def __init__(self, store: str, urls: Callable[[], list[str]],
                 auth: tuple[str, str] | None = None, *, reads: bool = True,
                 setup: Callable[[], None] | None = None) -> None:
        self.store = store
        self.setup = setup  # run once before the first write (the store's client user)
        self.urls = urls  # client URLs of the ready pods, asked before every write
        self.http = httpx.Client(timeout=2.0, trust_env=False, auth=auth,
                                 follow_redirects=True)
        self.acknowledged: dict[str, str] = {}
        self.failures = 0
        # Each acknowledged write's wait since the one before: (when it came, seconds).
        self.waits: list[tuple[float, float]] = []
        self.history = History()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="writer", daemon=True)
        self.kv = kv_client(store, self.http)
        # The reader's own connections: its slow answers never delay the writer's writes
        # (longest_gap times the store, not this client).
        self._reader_kv = kv_client(store, httpx.Client(
            timeout=2.0, trust_env=False, auth=auth, follow_redirects=True))
        self._reader = (threading.Thread(target=self._read_registers, name="writer-reads",
                                         daemon=True) if reads else None)
        self._newest: str | None = None  # the w/ key being written, for the reader

    @property
    def longest_gap(self) -> float:
        """The longest time between two acknowledged writes so far, seconds."""
        return self.longest_wait() or 0.0

    def longest_wait(self, since: float = float("-inf")) -> float | None:
        """The longest wait of the writes acknowledged at or after ``since`` (monotonic
        seconds); None when none was."""
        return max((wait for came, wait in self.waits if came >= since), default=None)

    def start(self) -> Writer:
        if self.setup is not None:
            self.setup()
        self._thread.start()
        if self._reader is not None:
            self._reader.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        if self._reader is not None:
            self._reader.join(10)

    def _run(self) -> None:
        n = 0
        last = time.monotonic()
        while not self._stop.is_set():
            key, value = f"w/{n:06d}", str(n)
            self._newest = key
            written = False
            outcomes: set[str] = set()
            for url in self.urls():
                outcome = self._put(self.kv, WRITER, url, key, value)
                outcomes.add(outcome)
                if outcome == "ok":
                    written = True
                    break
            now = time.monotonic()
            if written:
                self.acknowledged[key] = value
                self.waits.append((now, now - last))
                last = now
            else:
                self.failures += 1
            # A key whose write may have happened is not tried again: attempts of unknown
            # outcome on one key are what makes a check slow (each may take effect at any
            # later time), so each key has one round of them at most.
            if written or "info" in outcomes:
                n += 1
            self._stop.wait(0.05)  # about 20 writes a second, a steady client

    def _read_registers(self) -> None:
        round_ = 0
        answering = True  # whether the store answered the last read
        while not self._stop.is_set():
            urls = self.urls()
            if urls:
                # Write one register and read it back through the next pod, read the
                # next register (not written yet in the first lap) and the w/ key being
                # written, each through another pod than the last. While the store does
                # not answer, only read: writes of unknown outcome piling up on a few
                # keys are what makes a check slow (each may take effect at any later
                # time), and an outage would pile them up.
                key = f"r/{round_ % REGISTERS}"
                if answering:
                    self._put(self._reader_kv, READER, urls[round_ % len(urls)], key,
                              str(round_))
                answering = self._get(urls[(round_ + 1) % len(urls)], key)
                self._get(urls[(round_ + 2) % len(urls)], f"r/{(round_ + 1) % REGISTERS}")
                newest = self._newest
                if newest is not None:
                    self._get(urls[round_ % len(urls)], newest)
            round_ += 1
            self._stop.wait(0.1)

    def _put(self, kv: Kv, client: int, url: str, key: str, value: str) -> str:
        """One write through ``url``, recorded; its outcome: ``ok`` (acknowledged),
        ``fail`` (refused before it was sent) or ``info`` (may have taken effect: a
        timeout, an error after sending, an answer that is no acknowledgement)."""
        handle = self.history.invoke(client, "write", key, value)
        try:
            written = kv.put(url, key, value)
        except NOT_SENT:
            self.history.fail(handle)
            return "fail"
        except (httpx.HTTPError, ValueError):
            written = False
        if written:
            self.history.ok(handle)
            return "ok"
        # A store's refusal can come after the write was proposed (etcd's "request timed
        # out", rqlite's lost leadership while committing): it may still take effect.
        self.history.info(handle)
        return "info"

    def _get(self, url: str, key: str) -> bool:
        """One linearizable read through ``url``, recorded; a failed one is left out.
        Whether the store answered."""
        handle = self.history.invoke(READER, "read", key)
        try:
            value = self._reader_kv.get(url, key)
        except (httpx.HTTPError, ValueError, KeyError, IndexError):
            self.history.fail(handle)
            return False
        self.history.ok(handle, value)
        return True

    def check_history(self, timeout: float = 60.0) -> Verdict:
        """The linearizability checker's verdict on the history (after stop()); see
        player.history.History.check."""
        return self.history.check(timeout=timeout)

    def read_all(self, url: str) -> dict[str, str]:
        """Every key under w/ as the store has it now (a linearizable read)."""
        return self.kv.read_prefix(url, "w/")

    def lost(self, url: str, *, timeout: float = 30.0) -> list[str]:
        """Acknowledged keys missing (or changed) in the store. A linearizable read waits
        for a leader: right after a membership change it may not answer within one
        request's timeout, so it is asked until ``timeout``."""
        stored: dict[str, str] = wait_until(
            lambda: (self.read_all(url),), what=f"a linearizable read of w/ through {url}",
            timeout=timeout, interval=0.2)[0]
        return sorted(k for k, v in self.acknowledged.items() if stored.get(k) != v)


def writer_for(player: StatefulSetPlayer) -> Writer:
    """A client writing through whichever of the player's pods are ready (as listed at
    most READY_URLS_SECONDS before), on the store's client port, with the credentials the
    example's Secrets give a client (if any), once the store has what the client needs
    (Kv.setup)."""
    store = player.example.store
    kv_class = harness_class(store).kv_class
    auth = kv_class.credentials(player.example.secrets)
    return Writer(store, Endpoints(lambda: [kv_class.client_url(p.ip, store)
                                            for p in list(player.pods.values()) if p.ready]),
                  auth=auth, setup=lambda: kv_class.setup(player))
