"""What every store adapter shares over HTTP: one request, its JSON, checked fields."""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping
from typing import Any

import httpx

from agent.errors import BackendError, BackendUnavailable


def decode_json(response: httpx.Response, what: str) -> Any:
    """The JSON body of a 2xx response, or the right error for anything else."""
    if response.status_code >= 500:
        raise BackendUnavailable(f"{what}: HTTP {response.status_code}")
    if response.status_code >= 400:
        raise BackendError(f"{what}: HTTP {response.status_code}: {response.text[:200]!r}")
    try:
        return json.loads(response.content)
    except ValueError:
        raise BackendError(f"{what}: not JSON: {response.text[:200]!r}") from None


async def request(
    client: httpx.AsyncClient, method: str, url: str, what: str, **kwargs: Any
) -> httpx.Response:
    """Send one request; transport failures become BackendUnavailable."""
    try:
        return await client.request(method, url, **kwargs)
    except httpx.TimeoutException:
        raise BackendUnavailable(f"{what}: timed out") from None
    except httpx.TransportError as exc:
        failure = resolution_failure(exc)
        if failure is not None:
            # Peers are asked by their DNS names: say so when DNS is what failed.
            raise BackendUnavailable(f"{what}: cannot resolve {httpx.URL(url).host} "
                                     f"(DNS: {failure.strerror})") from None
        raise BackendUnavailable(f"{what}: {type(exc).__name__}: {exc}") from None
    except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
        # InvalidURL is not an HTTPError: a member advertising a bad URL lands here.
        raise BackendError(f"{what}: {type(exc).__name__}: {exc}") from None


def resolution_failure(exc: BaseException) -> socket.gaierror | None:
    """The name-resolution error behind a transport failure, if that is what it was."""
    seen: BaseException | None = exc
    for _ in range(8):  # httpx -> httpcore -> OSError; bounded against cycles
        if seen is None:
            return None
        if isinstance(seen, socket.gaierror):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def need(mapping: Any, key: str, what: str, kind: type | tuple[type, ...] = object) -> Any:
    """``mapping[key]`` checked for presence and type, else BackendError naming it."""
    if not isinstance(mapping, Mapping):
        raise BackendError(f"{what}: expected an object, got {type(mapping).__name__}")
    if key not in mapping:
        raise BackendError(f"{what}: missing field {key!r}")
    value = mapping[key]
    if not isinstance(value, kind):
        raise BackendError(f"{what}: field {key!r} has type {type(value).__name__}")
    return value


def optional(mapping: Mapping[str, Any], key: str, what: str, kind: type | tuple[type, ...],
             default: Any) -> Any:
    """``mapping[key]`` when present and not null, checked for type; else ``default``."""
    value = mapping.get(key)
    if value is None:
        return default
    if not isinstance(value, kind):
        raise BackendError(f"{what}: field {key!r} has type {type(value).__name__}")
    return value


def as_int(value: Any, what: str) -> int:
    """A uint64 that may arrive as a decimal string (grpc-gateway) or a JSON number."""
    if isinstance(value, bool):
        raise BackendError(f"{what}: expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise BackendError(f"{what}: expected an integer, got {value!r}")


def answered(response: httpx.Response, store: str, doing: str, *,
             needs: str | None = None) -> None:
    """Nothing for a 200. A 401 or 403 is a refusal for good (BackendError: the agent's
    credentials lack ``needs``, or the store's answer says what); anything else one
    worth retrying (BackendUnavailable), named with the store's answer."""
    code = response.status_code
    if code == 200:
        return
    if code in (401, 403):
        why = f" ({needs})" if needs else f": {response.text[:300]}"
        raise BackendError(f"{store} denied {doing}: HTTP {code}{why}")
    raise BackendUnavailable(f"{store} refused {doing}: HTTP {code}: {response.text[:300]}")
