"""Pure naming rules of a StatefulSet pod: ordinal, set name, FQDNs, peer names."""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent.errors import ConfigError

# RFC 1123 label, as Kubernetes validates pod hostnames, Service and namespace names.
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# A StatefulSet pod is "<set>-<ordinal>"; Kubernetes never writes leading zeros.
_POD_NAME = re.compile(r"^(?P<set>.+)-(?P<ordinal>0|[1-9][0-9]*)$")
MAX_LABEL = 63
MAX_FQDN = 253


class IdentityError(ConfigError):
    """A name does not follow the StatefulSet naming rules."""


def is_dns_label(value: str) -> bool:
    """True when ``value`` is a valid RFC 1123 label (lower case, <= 63 chars)."""
    # fullmatch: "$" alone also matches before a final newline ("prod\n").
    return len(value) <= MAX_LABEL and bool(_DNS_LABEL.fullmatch(value))


def check_dns_name(value: str) -> str:
    """Return ``value`` without a trailing dot if it is a valid DNS name, else raise."""
    name = value.rstrip(".").lower()
    if not name or len(name) > MAX_FQDN:
        raise IdentityError(f"{value!r} is not a DNS name (empty or longer than {MAX_FQDN})")
    bad = [label for label in name.split(".") if not is_dns_label(label)]
    if bad:
        raise IdentityError(f"{value!r} is not a DNS name: bad label {bad[0]!r}")
    return name


@dataclass(frozen=True, slots=True)
class PodIdentity:
    """Who this pod is inside its StatefulSet."""

    statefulset: str
    ordinal: int

    @property
    def name(self) -> str:
        return pod_name(self.statefulset, self.ordinal)


def pod_name(statefulset: str, ordinal: int) -> str:
    """The pod name the StatefulSet controller gives to ``ordinal``."""
    return f"{statefulset}-{ordinal}"


def parse_pod_name(name: str) -> PodIdentity:
    """Split a StatefulSet pod name into set name and ordinal, or raise IdentityError."""
    if not is_dns_label(name):
        raise IdentityError(
            f"pod name {name!r} is not a valid hostname label (lower case letters, digits, "
            f"'-', at most {MAX_LABEL} characters)"
        )
    match = _POD_NAME.match(name)
    if match is None:
        raise IdentityError(
            f"pod name {name!r} is not a StatefulSet pod name (<statefulset>-<ordinal>, "
            "ordinal without leading zeros)"
        )
    statefulset = match.group("set")
    if not is_dns_label(statefulset):
        raise IdentityError(f"pod name {name!r}: StatefulSet part {statefulset!r} is not valid")
    return PodIdentity(statefulset=statefulset, ordinal=int(match.group("ordinal")))


def service_fqdn(service: str, namespace: str, domain: str) -> str:
    """``<svc>.<ns>.svc.<domain>``: the headless Service's own name."""
    return f"{service}.{namespace}.svc.{domain}"


def pod_fqdn(pod: str, service: str, namespace: str, domain: str) -> str:
    """``<pod>.<svc>.<ns>.svc.<domain>``: the stable per-pod DNS name."""
    return f"{pod}.{service_fqdn(service, namespace, domain)}"


def srv_name(port_name: str, service: str, namespace: str, domain: str) -> str:
    """``_<port>._tcp.<svc>.<ns>.svc.<domain>``: the SRV name of a named Service port."""
    return f"_{port_name}._tcp.{service_fqdn(service, namespace, domain)}"


def peer_names(statefulset: str, replicas: int) -> list[str]:
    """Pod names for ordinals ``0 .. replicas-1``."""
    if replicas < 0:
        raise IdentityError(f"replica count must not be negative, got {replicas}")
    return [pod_name(statefulset, ordinal) for ordinal in range(replicas)]


def ordinal_of_fqdn(
    fqdn: str, *, statefulset: str, service: str, namespace: str, domain: str
) -> int | None:
    """The ordinal of a pod FQDN belonging to this set and Service, else None."""
    suffix = "." + service_fqdn(service, namespace, domain)
    name = fqdn.rstrip(".").lower()
    if not name.endswith(suffix):
        return None
    host = name[: -len(suffix)]
    if "." in host:
        return None
    try:
        identity = parse_pod_name(host)
    except IdentityError:
        return None
    return identity.ordinal if identity.statefulset == statefulset else None


def ordinal_of_member(name: str, statefulset: str | None) -> int | None:
    """The ordinal a store member's name implies (``db-2``, ``db-2.db.ns.svc...:4002``),
    when it is a pod of ``statefulset``."""
    if not statefulset:
        return None
    host = name.split(":", 1)[0].split(".", 1)[0]
    try:
        identity = parse_pod_name(host)
    except IdentityError:
        return None
    return identity.ordinal if identity.statefulset == statefulset else None
