"""A client writing numbered keys through whichever pod is ready, counting what the store
acknowledged, and reading it all back at the end; it also times leaderless spells."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import httpx

from agent.registry import STORES
from player.stores import harness_class, kv_client
from player.wait import wait_until

if TYPE_CHECKING:
    from player.statefulset import StatefulSetPlayer


class Writer:
    """Writes ``w/<n>`` through the store's key-value client (player.stores) in a thread."""

    def __init__(self, store: str, urls: Callable[[], list[str]],
                 auth: tuple[str, str] | None = None) -> None:
        self.store = store
        self.urls = urls  # client URLs of the ready pods, asked before every write
        self.http = httpx.Client(timeout=2.0, trust_env=False, auth=auth,
                                 follow_redirects=True)
        self.acknowledged: dict[str, str] = {}
        self.failures = 0
        self.longest_gap = 0.0  # longest time between two acknowledged writes
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="writer", daemon=True)
        self.kv = kv_client(store, self.http)

    def start(self) -> Writer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        n = 0
        last = time.monotonic()
        while not self._stop.is_set():
            key, value = f"w/{n:06d}", str(n)
            written = False
            for url in self.urls():
                try:
                    written = self.kv.put(url, key, value)
                except (httpx.HTTPError, ValueError):
                    written = False
                if written:
                    break
            now = time.monotonic()
            if written:
                self.acknowledged[key] = value
                self.longest_gap = max(self.longest_gap, now - last)
                last = now
                n += 1
            else:
                self.failures += 1
            self._stop.wait(0.05)  # about 20 writes a second, a steady client

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
    """A client writing through whichever of the player's pods are ready, on the store's
    client port, with the credentials the example's Secrets give a client (if any)."""
    store = player.example.name
    auth = harness_class(store).kv_class.credentials(player.example.secrets)
    port = STORES[store].client_port
    return Writer(store, lambda: [f"http://{p.ip}:{port}" for p in list(player.pods.values())
                                  if p.ready], auth=auth)
