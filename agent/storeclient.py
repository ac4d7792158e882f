"""The HTTP client for the store's API: timeouts, TLS and auth from settings."""

from __future__ import annotations

import ssl

import httpx

from agent.config.settings import Settings
from agent.errors import ConfigError
from agent.transport import CompletingTransport, completing_timeout


def http_client(settings: Settings) -> httpx.AsyncClient:
    """The store client: timeouts, TLS and auth from settings; secrets read from files."""
    verify: ssl.SSLContext | bool = True
    if settings.store_ca_file or settings.store_cert_file:
        try:
            context = ssl.create_default_context(
                cafile=str(settings.store_ca_file) if settings.store_ca_file else None
            )
            if settings.store_cert_file and settings.store_key_file:
                context.load_cert_chain(str(settings.store_cert_file),
                                        str(settings.store_key_file))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"store TLS files: {exc}") from None
        verify = context
    auth: httpx.BasicAuth | None = None
    if settings.store_username:
        password = ""
        if settings.store_password_file is not None:
            try:
                password = settings.store_password_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"AGENT_STORE_PASSWORD_FILE: {exc.strerror}") from None
        auth = httpx.BasicAuth(settings.store_username, password)
    headers = {}
    if settings.store_token_file is not None:
        try:
            token = settings.store_token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"AGENT_STORE_TOKEN_FILE: {exc.strerror}") from None
        spec = settings.store()
        if spec is None or spec.token_header is None:
            raise ConfigError(f"AGENT_STORE_TOKEN_FILE: {settings.backend} takes no token")
        headers[spec.token_header] = token
    transport = httpx.AsyncHTTPTransport(
        verify=verify, trust_env=False,
        limits=httpx.Limits(max_connections=20, max_keepalive_connections=10))
    return httpx.AsyncClient(
        headers=headers,
        timeout=completing_timeout(settings.store_timeout_seconds),
        auth=auth,
        follow_redirects=False,
        transport=CompletingTransport(transport),
        trust_env=False,
    )
