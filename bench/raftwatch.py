"""Watches a store's raft leader and term through every pod's own API, so a benchmark can
count the leader changes and elections an operation caused."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

# (is this node the leader, its current term), read from the node at a client URL.
RaftState = Callable[[httpx.Client, str], tuple[bool, int]]


def etcd_state(http: httpx.Client, url: str) -> tuple[bool, int]:
    status = http.post(f"{url}/v3/maintenance/status", json={}).raise_for_status().json()
    return (status.get("leader") == status["header"]["member_id"],
            int(status.get("raftTerm", status["header"].get("raft_term", 0))))


def rqlite_state(http: httpx.Client, url: str) -> tuple[bool, int]:
    raft = http.get(f"{url}/status").raise_for_status().json()["store"]["raft"]
    return raft.get("state") == "Leader", int(raft.get("term", 0))


def consul_state(http: httpx.Client, url: str) -> tuple[bool, int]:
    raft = http.get(f"{url}/v1/agent/self").raise_for_status().json()["Stats"]["raft"]
    return raft.get("state") == "Leader", int(raft.get("term", 0))


STATES: dict[str, RaftState] = {"etcd": etcd_state, "rqlite": rqlite_state,
                                 "consul": consul_state}


@dataclass(frozen=True, slots=True)
class Seen:
    """One observation: when, which pod led (None: none said so), the highest term."""

    at: float
    leader: str | None
    term: int


@dataclass(frozen=True, slots=True)
class Elections:
    """What the watch saw within one window."""

    leader_changes: int  # times the leader became another pod
    term_increments: int  # elections, a hand-off's included (raft counts both in terms)
    leaderless: float  # the longest time no pod said it led, seconds


class RaftWatch:
    """Asks every pod (``pods``: name -> client URL) for its role and term every
    ``interval`` seconds, in a thread."""

    def __init__(self, store: str, pods: Callable[[], dict[str, str]], *,
                 auth: tuple[str, str] | None = None, interval: float = 0.1) -> None:
        self.state = STATES[store]
        self.pods = pods
        self.interval = interval
        self.http = httpx.Client(timeout=0.3, trust_env=False, auth=auth,
                                 follow_redirects=True)
        self._pool = ThreadPoolExecutor(8, thread_name_prefix="raftwatch")
        self.seen: list[Seen] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="raftwatch", daemon=True)

    def start(self) -> RaftWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._pool.shutdown(wait=True)

    def _ask(self, url: str) -> tuple[bool, int] | None:
        try:
            return self.state(self.http, url)
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            pods = sorted(self.pods().items())
            answers = self._pool.map(self._ask, [url for _, url in pods])
            states = [(answer[1], answer[0], name)
                      for (name, _), answer in zip(pods, answers, strict=True) if answer]
            if states:
                # Two may say they lead for a moment (the old one has not heard yet): the
                # one of the highest term does.
                leaders = sorted(s for s in states if s[1])
                self.seen.append(Seen(time.monotonic(), leaders[-1][2] if leaders else None,
                                      max(s[0] for s in states)))

    def leader(self) -> str | None:
        """The pod that led at the last observation that saw one."""
        for seen in reversed(self.seen):
            if seen.leader is not None:
                return seen.leader
        return None

    def elections(self, start: float, end: float) -> Elections:
        """Leader changes and term increments between ``start`` and ``end``, counted from
        the last observation before ``start``."""
        before = [s for s in self.seen if s.at < start]
        inside = [s for s in self.seen if start <= s.at < end]
        seen = before[-1:] + inside
        changes, last = 0, None
        for item in seen:
            if item.leader is None:
                continue
            if last is not None and item.leader != last:
                changes += 1
            last = item.leader
        terms = [s.term for s in seen]
        leaderless, since = 0.0, None
        for item in seen:
            if item.leader is None:
                since = item.at if since is None else since
                continue
            if since is not None:
                leaderless = max(leaderless, item.at - since)
            since = None
        if since is not None:
            leaderless = max(leaderless, end - since)
        return Elections(leader_changes=changes,
                         term_increments=max(terms) - terms[0] if terms else 0,
                         leaderless=leaderless)
