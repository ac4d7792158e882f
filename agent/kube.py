"""Kubernetes API calls the agent makes: the StatefulSet's replicas, pods, Events on the pod."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from agent.config.settings import Settings
from agent.errors import KubeError

log = structlog.get_logger("agent.kube")


@dataclass(frozen=True, slots=True)
class PodState:
    """What the repair needs of a pod: its phase, and since when it is being deleted."""

    name: str
    uid: str
    phase: str  # Pending, Running, Succeeded, Failed, Unknown
    # metadata.deletionTimestamp: the time the pod should be gone by (its grace included)
    deleting_since: datetime.datetime | None = None


def import_client() -> None:
    """Import what a client and a StatefulSet read need (lightkube: ~0.25 s of CPU): a
    caller that has other work meanwhile runs this in a thread, off its event loop."""
    import lightkube
    import lightkube.config.client_adapter
    import lightkube.resources.apps_v1  # noqa: F401


class Kube:
    """A lazily built lightkube client (its import costs ~0.25 s of CPU and memory)."""

    def __init__(self, settings: Settings,
                 on_event: Callable[[str, bool], None] | None = None) -> None:
        self.settings = settings
        self.on_event = on_event  # told (reason, warning) of each Event before it is posted
        self._client: Any = None

    def _make_client(self) -> Any:
        import httpx
        from lightkube import AsyncClient, KubeConfig

        settings = self.settings
        if settings.kube_api_url:
            cluster: dict[str, Any] = {"server": settings.kube_api_url}
            if settings.kube_ca_file is not None:
                cluster["certificate-authority"] = str(settings.kube_ca_file)
            config = KubeConfig.from_dict({
                "clusters": [{"name": "api", "cluster": cluster}],
                "users": [{"name": "agent", "user": {"tokenFile": str(settings.kube_token_file)}}],
                "contexts": [{"name": "agent", "context": {"cluster": "api", "user": "agent"}}],
                "current-context": "agent",
            })
        else:
            config = KubeConfig.from_service_account(str(settings.kube_token_file.parent))
        from lightkube.config.client_adapter import verify_cluster

        from agent.transport import CompletingTransport, completing_timeout

        # Calls are bounded with asyncio.timeout: the transport lets a cancelled one end by
        # itself, so the pool never keeps its connection (httpcore 1.0.9).
        single = config.get()
        if single is None or single.user is None:  # both are set above
            raise KubeError("Kubernetes client: no context in the configuration")
        verify = verify_cluster(single.cluster, single.user, single.abs_file, trust_env=False)
        transport = CompletingTransport(httpx.AsyncHTTPTransport(verify=verify,
                                                                 trust_env=False))
        return AsyncClient(config, namespace=settings.namespace,
                           timeout=completing_timeout(settings.kube_timeout_seconds),
                           trust_env=False, transport=transport)

    @property
    def client(self) -> Any:
        if self._client is None:
            try:
                self._client = self._make_client()
            except Exception as exc:  # lightkube config errors: missing token, bad URL
                raise KubeError(f"Kubernetes client: {type(exc).__name__}: {exc}") from None
        return self._client

    async def _get(self, resource: Any, plural: str, name: str) -> Any:
        """Object ``name`` of lightkube ``resource`` (API kind ``plural``) in this
        namespace; KubeError, with ``not_found`` when the API server says it does not
        exist."""
        try:
            client = self.client  # built (lightkube imported) outside the request's budget
            # httpx's timeout bounds each phase (connect, every read) on its own, so an
            # answer trickling in could outlast it many times over: bound the whole call.
            async with asyncio.timeout(self.settings.kube_timeout_seconds):
                return await client.get(resource, name, namespace=self.settings.namespace)
        except KubeError:
            raise
        except Exception as exc:
            raise KubeError(self._describe(exc, f"GET {plural[:-1]} {name}"),
                            retryable=_retryable(exc),
                            not_found=_not_found(exc, plural, name)) from None

    async def _statefulset(self, name: str) -> Any:
        from lightkube.resources.apps_v1 import StatefulSet

        return await self._get(StatefulSet, "statefulsets", name)

    async def statefulset_scale(self, name: str) -> tuple[int, int]:
        """(``spec.replicas``, ``spec.ordinals.start``) of StatefulSet ``name``."""
        replicas, start, _ = await self.pod_management(name)
        return replicas, start

    async def pod_management(self, name: str) -> tuple[int, int, str]:
        """(``spec.replicas``, ``spec.ordinals.start``, ``spec.podManagementPolicy``) of
        StatefulSet ``name``: the pods a Galera vote waits for, and whether they start
        together."""
        spec = (await self._statefulset(name)).spec
        replicas = spec.replicas if spec is not None else None
        ordinals = getattr(spec, "ordinals", None) if spec is not None else None
        start = getattr(ordinals, "start", None) if ordinals is not None else None
        policy = getattr(spec, "podManagementPolicy", None) if spec is not None else None
        # The API's defaults: 1 replica, ordinals from 0, OrderedReady.
        return (1 if replicas is None else int(replicas), int(start or 0),
                str(policy or "OrderedReady"))

    async def rolling_update(self, name: str) -> tuple[int, int | str | None]:
        """(``spec.replicas``, ``spec.updateStrategy.rollingUpdate.maxUnavailable``, None
        when unset or when the API server drops it: its feature gate is off)."""
        spec = (await self._statefulset(name)).spec
        replicas = spec.replicas if spec is not None else None
        strategy = getattr(spec, "updateStrategy", None) if spec is not None else None
        rolling = getattr(strategy, "rollingUpdate", None) if strategy is not None else None
        value = getattr(rolling, "maxUnavailable", None) if rolling is not None else None
        return (1 if replicas is None else int(replicas),
                value if isinstance(value, (int, str)) else None)

    async def pod(self, name: str) -> PodState | None:
        """Pod ``name`` of this namespace, or None when the API server says it does not
        exist. Any other failure raises KubeError."""
        from lightkube.resources.core_v1 import Pod

        try:
            pod = await self._get(Pod, "pods", name)
        except KubeError as exc:
            if exc.not_found:
                return None
            raise
        meta, status = pod.metadata, pod.status
        return PodState(name=name, uid=str(getattr(meta, "uid", "") or ""),
                        phase=str(getattr(status, "phase", None) or "Unknown"),
                        deleting_since=getattr(meta, "deletionTimestamp", None))

    async def event(self, *, reason: str, message: str, warning: bool = False) -> None:
        """Record an Event on this pod; failures are logged, never raised."""
        from lightkube.models.core_v1 import EventSource, ObjectReference
        from lightkube.models.meta_v1 import ObjectMeta
        from lightkube.resources.core_v1 import Event

        if self.on_event is not None:
            self.on_event(reason, warning)
        pod, namespace = self.settings.pod_name, self.settings.namespace
        now = datetime.datetime.now(datetime.UTC)
        event = Event(
            metadata=ObjectMeta(generateName=f"{pod}.", namespace=namespace),
            involvedObject=ObjectReference(kind="Pod", name=pod, namespace=namespace,
                                           apiVersion="v1"),
            reason=reason, message=message, type="Warning" if warning else "Normal",
            source=EventSource(component="sts-agent"),
            firstTimestamp=now, lastTimestamp=now, count=1,
        )
        try:
            client = self.client
            async with asyncio.timeout(self.settings.kube_timeout_seconds):
                await client.create(event, namespace=namespace)
            log.info("event_recorded", reason=reason, message=message)
        except Exception as exc:
            log.warning("event_failed", reason=reason,
                        error=self._describe(exc, "POST event"))

    def _describe(self, exc: BaseException, what: str) -> str:
        import httpx

        if isinstance(exc, TimeoutError | httpx.TimeoutException):
            return (f"{what}: timed out after {self.settings.kube_timeout_seconds:g} s "
                    f"({type(exc).__name__})")
        return _describe(exc, what)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()


def _status(exc: BaseException) -> tuple[int, str] | None:
    """The HTTP status of a refused request and its message. lightkube raises its
    ApiError (with the API's metav1.Status) only for a Content-Type of exactly
    ``application/json``; any other answer (a charset, a proxy's page) comes as a bare
    httpx.HTTPStatusError, whose code counts just the same."""
    import httpx

    status = getattr(exc, "status", None)
    code = getattr(status, "code", None)
    if isinstance(code, int):
        return code, str(getattr(status, "message", None) or "")
    if isinstance(exc, httpx.HTTPStatusError) and exc.response is not None:
        return exc.response.status_code, exc.response.reason_phrase
    return None


def _not_found(exc: BaseException, kind: str, name: str) -> bool:
    """Whether the API server's own answer says object ``name`` of ``kind`` does not
    exist: a Status with reason NotFound naming it (a 404 from a wrong path or a proxy
    says nothing about the object)."""
    status = getattr(exc, "status", None)
    details = getattr(status, "details", None)
    return (getattr(status, "code", None) == 404
            and getattr(status, "reason", None) == "NotFound"
            and getattr(details, "kind", None) == kind
            and getattr(details, "name", None) == name)


def _retryable(exc: BaseException) -> bool:
    """Transport failures, 5xx and 429 may pass; 401 (after the token re-read), 403 and
    404 will not."""
    status = _status(exc)
    if status is not None:
        return status[0] >= 500 or status[0] == 429
    return True


def _describe(exc: BaseException, what: str) -> str:
    status = _status(exc)
    if status is not None:
        return f"{what}: HTTP {status[0]}: {status[1]}"
    return f"{what}: {type(exc).__name__}: {exc}"
