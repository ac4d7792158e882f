"""host:port text both ways."""

from __future__ import annotations

import pytest

from agent.addresses import host_port, parse_host_port


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10.96.0.10", ("10.96.0.10", 53)),
        ("127.0.53.1:5353", ("127.0.53.1", 5353)),
        ("[fd00::10]:53", ("fd00::10", 53)),
        ("fd00::10", ("fd00::10", 53)),
        ("[::1]", ("::1", 53)),
    ],
)
def test_parse_host_port(value: str, expected: tuple[str, int]) -> None:
    assert parse_host_port(value, 53) == expected


@pytest.mark.parametrize(
    "value", ["kube-dns:53", "1.2.3.4:0", "1.2.3.4:x", "[::1", "1.2.3.4:70000"]
)
def test_parse_host_port_rejects(value: str) -> None:
    with pytest.raises(ValueError, match=r"host must be an IP|port must be|\[ipv6\]"):
        parse_host_port(value, 53)


@pytest.mark.parametrize("host", ["10.0.0.1", "fd00::10", "db-0.db.ns.svc.cluster.local"])
def test_host_port_round_trip(host: str) -> None:
    text = host_port(host, 2379)
    if host[0].isdigit() or ":" in host:
        assert parse_host_port(text, 1) == (host, 2379)
    assert text.endswith(":2379")
