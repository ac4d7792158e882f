"""The commands that ask the local sidecar: where they find it."""

from __future__ import annotations

import pytest

from agent.ask import local_url
from agent.config.settings import Settings


@pytest.mark.parametrize(
    ("listen", "url"),
    [("0.0.0.0:9090", "http://127.0.0.1:9090"), ("[::]:9091", "http://[::1]:9091"),
     ("127.0.20.3:9090", "http://127.0.20.3:9090")],
)
def test_local_sidecar_url(listen: str, url: str) -> None:
    assert local_url(Settings(listen=listen)) == url
