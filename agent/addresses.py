"""host:port text both ways, IPv6 bracketed: for settings, messages and store addresses."""

from __future__ import annotations

import ipaddress


def host_port(host: str, port: int | str) -> str:
    """``host:port``, bracketing an IPv6 address (the inverse of parse_host_port)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_host_port(value: str, default_port: int) -> tuple[str, int]:
    """Parse ``ip``, ``ip:port`` or ``[v6]:port``; the host must be an IP address."""
    host, port_text = value, ""
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"{value!r} is not [ipv6]:port")
        port_text = rest[1:]
    elif value.count(":") == 1:
        host, port_text = value.split(":")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{value!r}: host must be an IP address") from None
    port = default_port
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"{value!r}: port must be 1-65535")
        port = int(port_text)
    return str(address), port
