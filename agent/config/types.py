"""The checked value types settings are made of; each names what is wrong with a value."""

from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import AfterValidator

from agent.addresses import parse_host_port
from agent.identity import IdentityError, check_dns_name, is_dns_label, parse_pod_name
from agent.registry import STORES

# The longest duration any setting takes (a week): larger values overflow OS timers.
MAX_DURATION_SECONDS = 7 * 24 * 3600.0


def _label(value: str) -> str:
    if not is_dns_label(value):
        raise ValueError(f"{value!r} is not a DNS-1123 label")
    return value


def _pod_name(value: str) -> str:
    try:
        parse_pod_name(value)
    except IdentityError as exc:
        raise ValueError(exc.message) from None
    return value


def _domain(value: str) -> str:
    try:
        return check_dns_name(value)
    except IdentityError as exc:
        raise ValueError(exc.message) from None


def _ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address") from None


def _url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"{value!r} is not an http:// or https:// URL")
    return value.rstrip("/")


STORE_SCHEMES = ("http://", "https://", "mysql://", "unix://")


def _store_url(value: str) -> str:
    if not value.startswith(STORE_SCHEMES):
        raise ValueError(f"{value!r} is not an {', '.join(STORE_SCHEMES)} URL")
    return value.rstrip("/")


def _store(value: str) -> str:
    if value not in STORES:
        raise ValueError(f"{value!r} is not a store the agent knows ({', '.join(STORES)})")
    return value


def _seconds(value: float) -> float:
    if value > MAX_DURATION_SECONDS:
        raise ValueError(f"at most {MAX_DURATION_SECONDS:g} seconds (a week)")
    return value


def _address(default_port: int) -> AfterValidator:
    def check(value: str) -> str:
        parse_host_port(value, default_port)
        return value

    return AfterValidator(check)


DnsLabel = Annotated[str, AfterValidator(_label)]
PodName = Annotated[str, AfterValidator(_pod_name)]
DomainName = Annotated[str, AfterValidator(_domain)]
IpAddress = Annotated[str, AfterValidator(_ip)]
HttpUrl = Annotated[str, AfterValidator(_url)]
StoreUrl = Annotated[str, AfterValidator(_store_url)]  # the store's scheme: cross-checked
StoreName = Annotated[str, AfterValidator(_store)]
Seconds = Annotated[float, AfterValidator(_seconds)]
DnsServer = Annotated[str, _address(53)]
LISTEN_PORT = 9090
ListenAddress = Annotated[str, _address(LISTEN_PORT)]
