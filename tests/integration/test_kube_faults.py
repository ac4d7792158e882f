"""The leave decision while the Kubernetes API is slow, failing or rejecting the token.

A Leaver (the real Kube client, a fake three-member store; this pod is db-2) runs against
the real API server, as the agent's ServiceAccount, through a proxy injecting faults. Each
scenario checks the decision, what was logged and recorded, how long the decision took and
how many GETs of the StatefulSet the API saw (printed as a FIGURE line; run with -s).
"""

from __future__ import annotations

import asyncio
import importlib
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest
import structlog
from structlog.testing import capture_logs

import agent.kube
import agent.leave
from agent.config.settings import Settings
from agent.errors import BackendUnavailable
from agent.kube import Kube
from agent.leave import Leaver, Outcome, decide
from agent.membership import Membership
from agent.model import ClusterView, Member
from agent.readiness import Policy
from agent.reconfigure import RaftDeparture
from player.agentnamespace import AgentNamespace
from tests.integration.kubeproxy import Fault, KubeFaultProxy, resource_of

pytestmark = pytest.mark.integration

# One request's budget (AGENT_KUBE_TIMEOUT_SECONDS) and the leave deadline (grace period
# minus margin): small, so that the retry window (a third of the deadline) passes quickly.
TIMEOUT = 0.25
GRACE = 7.5
# Event-loop wake-ups and connection set-up beyond the budgets themselves, on a loaded
# machine; the bounds below are the settings' sums plus this.
LATENCY = 0.5
STATEFULSET = "db"


@dataclass
class Api:
    """The API as these scenarios see it: the namespace (objects, Events, the token file)
    and the fault proxy the agent talks through."""

    namespace: AgentNamespace
    proxy: KubeFaultProxy
    writers: list[threading.Timer] = field(default_factory=list)

    def received_for(self, resource: str) -> int:
        return self.proxy.received_for(resource)

    def event_reasons(self) -> list[str]:
        return self.namespace.event_reasons()

    def rotate_token(self, *, file_lag: float | None = 0.0) -> None:
        """A new token: the old one is refused from now on; the file holds the new one
        after ``file_lag`` seconds (as the kubelet writes a projected token), or never."""
        self.proxy.revoked.add(self.namespace.token_file.read_text())
        token = self.namespace.mint_token()
        if file_lag == 0.0:
            self.namespace.write_token(token)
        elif file_lag is not None:
            writer = threading.Timer(file_lag, self.namespace.write_token, args=(token,))
            writer.daemon = True
            self.writers.append(writer)
            writer.start()


def settings_for(api: Api) -> Settings:
    return Settings(pod_name="db-2", namespace=api.namespace.name, kube_api_url=api.proxy.url,
                    kube_token_file=api.namespace.token_file, kube_timeout_seconds=TIMEOUT,
                    termination_grace_period_seconds=GRACE, leave_margin_seconds=0)


def retry_window(settings: Settings) -> float:
    """How long decide() retries transient failures: a third of the leave deadline, as
    the Leaver asks it to."""
    return settings.leave_deadline_seconds() / 3


@dataclass
class Store:
    """Three members, db-0 leads, this pod is db-2; remove() takes a member out."""

    ids: list[str] = field(default_factory=lambda: ["db-0", "db-1", "db-2"])
    removed: list[str] = field(default_factory=list)
    can_transfer: ClassVar[bool] = False

    async def view(self, api_url: str | None = None) -> ClusterView:
        me = "db-2" if api_url is None else api_url.removeprefix("http://").split(":")[0]
        if api_url is not None and me not in self.ids:
            raise BackendUnavailable(f"{me} was removed")
        members = tuple(Member(id=i, name=i, address=f"{i}:4002", api_url=f"http://{i}:4001")
                        for i in self.ids)
        return ClusterView(members=members, leader_id="db-0", self_id=me, applied_index=1,
                           commit_index=1)

    async def remove(self, member_id: str, *, leader_url: str) -> None:
        self.removed.append(member_id)
        if member_id in self.ids:
            self.ids.remove(member_id)

    async def transfer_leadership(self, *, leader_url: str, target_id: str) -> None:
        raise AssertionError("this store cannot transfer leadership")


@dataclass
class Run:
    outcome: Outcome
    took: float  # trigger to outcome: the decision (the fake store answers at once)
    gets: int  # GETs of the StatefulSet the API saw, answered or not
    logs: list[MutableMapping[str, Any]]
    store: Store

    def logged(self, event: str) -> list[MutableMapping[str, Any]]:
        return [entry for entry in self.logs if entry["event"] == event]

    def figure(self, scenario: str, extra: str = "") -> None:
        print(f"FIGURE {scenario}: {self.outcome.result} in {self.took:.3f} s, "
              f"{self.gets} GET statefulset{extra}")


@pytest.fixture
def api(agent_namespace: AgentNamespace, kube_proxy: KubeFaultProxy) -> Iterator[Api]:
    # The agent imports lightkube on its first leave (0.2-0.4 s, once per process): done
    # here, so that every scenario's figures are alike.
    importlib.import_module("lightkube.resources.apps_v1")
    agent_namespace.add_statefulset(STATEFULSET, replicas=2)  # 3 -> 2: db-2 goes
    state = Api(agent_namespace, kube_proxy)
    yield state
    for writer in state.writers:
        writer.cancel()


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[MutableMapping[str, Any]]]:
    """structlog entries of the test; the modules' loggers are fresh, because one cached
    under an earlier configure() would bypass the capture."""
    with capture_logs() as entries:
        monkeypatch.setattr(agent.kube, "log", structlog.get_logger("agent.kube"))
        monkeypatch.setattr(agent.leave, "log", structlog.get_logger("agent.leave"))
        yield entries


async def leave(api: Api, logs: list[MutableMapping[str, Any]], *,
                during: Callable[[], Awaitable[None]] | None = None) -> Run:
    """One termination of db-2: decide, remove (or stay), post the Event, drain."""
    settings = settings_for(api)
    kube = Kube(settings)
    store = Store()
    membership = Membership(store, policy=Policy(), poll_interval_seconds=1,
                            poll_timeout_seconds=1)
    leaver = Leaver(membership, RaftDeparture(store), policy="scale-down", ordinal=2,
                    statefulset=STATEFULSET, replicas=kube, events=kube,
                    deadline_seconds=settings.leave_deadline_seconds())
    before = api.received_for("statefulsets")
    started = time.monotonic()
    task = asyncio.create_task(leaver.leave(final=True))
    try:
        if during is not None:
            await during()
        outcome = await task
        took = time.monotonic() - started
        await leaver.drain()
    finally:
        task.cancel()  # when `during` failed
        await kube.aclose()
    return Run(outcome, took, api.received_for("statefulsets") - before, logs, store)


def statuses(api: Api, resource: str) -> list[int]:
    return api.proxy.statuses(resource)


async def wait_for(what: str, condition: Callable[[], bool], *, within: float) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{within} s passed waiting for {what}")
        await asyncio.sleep(0.01)


def assert_left(run: Run) -> None:
    assert run.outcome.result == "removed", run.outcome
    assert run.store.removed == ["db-2"]
    [decision] = run.logged("leave_decision")
    assert decision["leave"] is True
    assert decision["reason"].startswith("scale-down: ordinal 2 is outside the kept ordinals")


def assert_stayed(run: Run, naming: str) -> None:
    assert run.outcome.result == "stayed", run.outcome
    assert run.outcome.reason.startswith(f"cannot read StatefulSet {STATEFULSET} ")
    assert naming in run.outcome.reason, run.outcome.reason
    assert run.store.removed == []
    [decision] = run.logged("leave_decision")
    assert decision["leave"] is False and decision["reason"] == run.outcome.reason


# --- a) slow, then normal, within the retry window ---------------------------------------

async def test_slow_api_is_retried_within_the_window(api: Api,
                                                     logs: list[MutableMapping[str, Any]]) -> None:
    api.proxy.inject(Fault(delay=4 * TIMEOUT, resource="statefulsets"), times=2)
    run = await leave(api, logs)
    run.figure("a slow (2 requests beyond the timeout), then normal")
    assert_left(run)
    assert run.gets == 3, "two timed out, the third answered"
    assert run.took >= 2 * TIMEOUT, "both slow requests were waited for"
    assert api.event_reasons() == ["MemberRemoved"]


# --- b) slow for longer than the retry window ---------------------------------------------

@pytest.mark.parametrize("fault", [
    pytest.param(Fault(delay=10 * TIMEOUT, resource="statefulsets"), id="no-answer"),
    # Headers at once, then the body 16 bytes at a time: every read arrives within
    # httpx's per-read timeout, so only a budget for the whole call ends it.
    pytest.param(Fault(trickle=TIMEOUT / 2, chunk=16, resource="statefulsets"),
                 id="trickled-answer"),
])
async def test_api_slow_beyond_the_window_means_stay_in_bounded_time(
        api: Api, logs: list[MutableMapping[str, Any]], fault: Fault) -> None:
    api.proxy.inject(fault)
    settings = settings_for(api)
    run = await leave(api, logs)
    run.figure(f"b slow beyond the window ({'trickle' if fault.trickle else 'delay'})")
    assert_stayed(run, naming=f"timed out after {TIMEOUT:g} s")
    window = retry_window(settings)
    assert run.took >= window, "it kept trying for the whole window"
    assert run.took <= window + settings.kube_timeout_seconds + LATENCY, run.took
    # Retried, yet each attempt lasts a whole timeout: no more than window / timeout + 1.
    assert 2 <= run.gets <= window / TIMEOUT + 1, run.gets
    assert api.event_reasons() == ["LeaveSkipped"]


# --- c) 503 / 429 for a while, 500 for good -----------------------------------------------

@pytest.mark.parametrize("exact_json_type", [True, False], ids=["apiserver-json",
                                                                 "json-with-charset"])
@pytest.mark.parametrize("status", [503, 429])
async def test_transient_errors_then_ok(api: Api, logs: list[MutableMapping[str, Any]],
                                        status: int, exact_json_type: bool) -> None:
    api.proxy.exact_json_type = exact_json_type
    api.proxy.inject(Fault(status=status, resource="statefulsets"), times=3)
    run = await leave(api, logs)
    run.figure(f"c {status} x3 then OK ({'exact' if exact_json_type else 'charset'} json)")
    assert_left(run)
    assert statuses(api, "statefulsets") == [status] * 3 + [200]
    assert run.gets == 4
    assert api.event_reasons() == ["MemberRemoved"]


@pytest.mark.parametrize("exact_json_type", [True, False], ids=["apiserver-json",
                                                                 "json-with-charset"])
async def test_500_for_good_means_stay(api: Api, logs: list[MutableMapping[str, Any]],
                                       exact_json_type: bool) -> None:
    api.proxy.exact_json_type = exact_json_type
    api.proxy.inject(Fault(status=500, resource="statefulsets"))
    settings = settings_for(api)
    run = await leave(api, logs)
    run.figure(f"c 500 for good ({'exact' if exact_json_type else 'charset'} json)")
    assert_stayed(run, naming="HTTP 500")
    window = retry_window(settings)
    assert window <= run.took <= window + settings.kube_timeout_seconds + LATENCY, run.took
    # Retried every 0.5 s (the back-off) for the window, no faster.
    assert 2 <= run.gets <= window / 0.5 + 2, run.gets
    assert set(statuses(api, "statefulsets")) == {500}
    assert api.event_reasons() == ["LeaveSkipped"]


# --- d) the token rotated on the server ---------------------------------------------------

async def test_token_rotated_during_leave_is_reread(api: Api,
                                                    logs: list[MutableMapping[str, Any]]) -> None:
    """The first GET fails (503) with the token read at start; the token rotates before
    the retry (the kubelet updates the file): the retry gets 401, re-reads, succeeds."""
    api.proxy.inject(Fault(status=503, resource="statefulsets"), times=1)

    async def rotate_after_first_get() -> None:
        await wait_for("the first GET of the StatefulSet answered 503",
                       lambda: statuses(api, "statefulsets") == [503], within=5)
        api.rotate_token()

    run = await leave(api, logs, during=rotate_after_first_get)
    run.figure("d token rotated during leave, file updated")
    assert_left(run)
    assert statuses(api, "statefulsets") == [503, 401, 200]
    assert api.event_reasons() == ["MemberRemoved"]  # with the new token too


@pytest.mark.parametrize("exact_json_type", [True, False], ids=["apiserver-json",
                                                                 "json-with-charset"])
@pytest.mark.parametrize("file_lag", [None, 1.0], ids=["file-never-updated",
                                                       "file-updated-late"])
async def test_rejected_token_means_stay_without_a_retry_storm(
        api: Api, logs: list[MutableMapping[str, Any]], file_lag: float | None,
        exact_json_type: bool) -> None:
    """401 after the re-read is final: the file the agent has is all it will get (the
    kubelet refreshes a projected token long before the API rejects the old one), and
    asking again with the same token cannot pass."""
    api.proxy.exact_json_type = exact_json_type
    api.rotate_token(file_lag=file_lag)
    run = await leave(api, logs)
    run.figure(f"d token rotated, file {'never' if file_lag is None else 'late'} "
               f"({'exact' if exact_json_type else 'charset'} json)")
    assert_stayed(run, naming="HTTP 401")
    assert statuses(api, "statefulsets") == [401, 401], "one GET, one re-read, no more"
    assert run.gets == 2
    if file_lag is not None:
        assert run.took < file_lag, "decided before the file changed"
    # The Event with the same token fails too: logged, never raised.
    assert api.namespace.events() == []
    [failed] = run.logged("event_failed")
    assert failed["reason"] == "LeaveSkipped" and "HTTP 401" in failed["error"]


# --- e) Events cannot be posted -----------------------------------------------------------

@pytest.mark.parametrize(("fault", "naming"), [
    pytest.param(Fault(status=500, resource="events"), "HTTP 500", id="500"),
    pytest.param(Fault(status=429, resource="events"), "HTTP 429", id="429"),
    pytest.param(Fault(delay=10 * TIMEOUT, resource="events"), f"timed out after {TIMEOUT:g} s",
                 id="no-answer"),
    pytest.param(Fault(trickle=TIMEOUT / 2, chunk=16, resource="events"),
                 f"timed out after {TIMEOUT:g} s", id="trickled-answer"),
])
async def test_event_failure_leaves_the_outcome_alone(api: Api,
                                                     logs: list[MutableMapping[str, Any]],
                                                     fault: Fault, naming: str) -> None:
    api.proxy.inject(fault)
    settings = settings_for(api)
    started = time.monotonic()
    run = await leave(api, logs)
    drained = time.monotonic() - started - run.took
    run.figure(f"e events fail ({naming})", f", Event drained in {drained:.3f} s")
    assert_left(run)
    # The StatefulSet was read before the Event was tried, never after: an Event's failure
    # starts no second decision. The read may take more than one GET: on a loaded machine
    # the first can miss its 0.25 s budget and is retried (the fresh-clone run of 3f1e070:
    # 2 GETs, removed in 1.18 s), which only a first GET that ran out of time allows.
    arrived = [resource_of(path) for _, path in api.proxy.received]
    assert "statefulsets" not in arrived[arrived.index("events"):], arrived
    assert run.gets == 1 or run.took > TIMEOUT, run
    if fault.status is not None:  # a slow answer may have created it: the agent gave up
        assert api.namespace.events() == []
    assert api.received_for("events") == 1, "one attempt: an Event is not retried"
    [failed] = run.logged("event_failed")
    assert failed["reason"] == "MemberRemoved" and naming in failed["error"], failed
    assert run.logged("event_recorded") == []
    [outcome] = run.logged("leave_outcome")
    assert outcome["result"] == "removed"
    # The exit waits for the Event no longer than one request's budget.
    assert drained <= settings.kube_timeout_seconds + LATENCY, drained


# --- decide() on its own: which refusals are final -----------------------------------------

@pytest.mark.parametrize("exact_json_type", [True, False], ids=["apiserver-json",
                                                                 "json-with-charset"])
@pytest.mark.parametrize(("status", "gets"), [(401, 2), (403, 1), (404, 1)])
async def test_refusals_are_final(api: Api, status: int, gets: int,
                                  exact_json_type: bool) -> None:
    """Whatever the Content-Type of the API's answer (lightkube makes an ApiError only of
    exactly application/json), 401/403/404 end the decision at once, naming the code."""
    api.proxy.exact_json_type = exact_json_type
    api.proxy.inject(Fault(status=status, resource="statefulsets"))
    kube = Kube(settings_for(api))
    started = time.monotonic()
    try:
        decision = await decide("scale-down", ordinal=2, statefulset=STATEFULSET,
                                replicas=kube, retry_seconds=retry_window(kube.settings))
    finally:
        await kube.aclose()
    took = time.monotonic() - started
    print(f"FIGURE decide {status} ({'exact' if exact_json_type else 'charset'} json): "
          f"stay in {took:.3f} s, {api.received_for('statefulsets')} GET statefulset")
    assert not decision.leave
    assert decision.reason.startswith(f"cannot read StatefulSet {STATEFULSET} (GET "
                                      f"statefulset {STATEFULSET}: HTTP {status}: "), decision
    assert api.received_for("statefulsets") == gets, "a refusal is not retried"
