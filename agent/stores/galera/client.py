"""wsrep status over MySQL's protocol (aiomysql): this pod's socket or a peer's port."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from agent.errors import BackendError, BackendUnavailable
from agent.storekit.http import resolution_failure

if TYPE_CHECKING:
    from agent.config.settings import Settings

DEFAULT_USER = "sts-agent"
# MySQL's "access denied" family: a refusal asking again will not lift.
_DENIED = {1044, 1045, 1142, 1227, 1698}


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a mariadbd answers: a unix socket, or host and port."""

    host: str | None = None
    port: int = 3306
    socket: str | None = None

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        """``unix:///run/mysqld/mysqld.sock`` or ``mysql://host:3306``."""
        parts = urlsplit(url)
        if parts.scheme == "unix":
            path = unquote(parts.path)
            if not path:
                raise BackendError(f"galera: {url!r} names no socket path")
            return cls(socket=path)
        if parts.scheme in ("mysql", "tcp", "http") and parts.hostname:
            return cls(host=parts.hostname, port=parts.port or 3306)
        raise BackendError(f"galera: {url!r} is neither unix:///<socket> nor "
                           "mysql://<host>:<port>")

    def __str__(self) -> str:
        return f"unix://{self.socket}" if self.socket else f"mysql://{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Credentials:
    """The status user (USAGE only suffices) and the file holding its password."""

    user: str
    password_file: Path | None = None

    @classmethod
    def of(cls, settings: Settings | None) -> Credentials:
        """The configured status user (``sts-agent`` by default) and password file."""
        if settings is None:
            return cls(DEFAULT_USER)
        return cls(settings.store_username or DEFAULT_USER, settings.store_password_file)

    def password(self) -> str:
        if self.password_file is None:
            return ""
        try:
            return self.password_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise BackendError(f"galera: cannot read the password file "
                               f"{self.password_file}: {exc.strerror}") from None


async def wsrep_status(endpoint: Endpoint, credentials: Credentials, *,
                       timeout_seconds: float) -> dict[str, str]:
    """The ``wsrep_%`` variables and ``Uptime`` of ``SHOW GLOBAL STATUS`` and the global
    ``wsrep_sst_method`` at ``endpoint``, within ``timeout_seconds``. BackendUnavailable:
    no answer (not running, refused, timed out, a joiner during a full copy has no SQL
    socket); BackendError: denied or not a MySQL server."""
    import aiomysql
    import pymysql

    what = f"galera {endpoint}"
    password = credentials.password()
    try:
        async with asyncio.timeout(timeout_seconds):
            connection = await aiomysql.connect(
                host=endpoint.host or "localhost", port=endpoint.port,
                unix_socket=endpoint.socket, user=credentials.user, password=password,
                connect_timeout=timeout_seconds, autocommit=True, program_name="sts-agent")
            try:
                async with connection.cursor() as cursor:
                    await cursor.execute("SHOW GLOBAL STATUS WHERE Variable_name "
                                         "LIKE 'wsrep\\_%' OR Variable_name = 'Uptime'")
                    rows = list(await cursor.fetchall())
                    # How this node copies as a donor: asked, not configured twice.
                    await cursor.execute("SHOW GLOBAL VARIABLES WHERE "
                                         "Variable_name = 'wsrep_sst_method'")
                    rows += await cursor.fetchall()
            finally:
                await connection.ensure_closed()  # says goodbye (COM_QUIT), then closes
    except TimeoutError:
        raise BackendUnavailable(f"{what}: timed out after {timeout_seconds:g} s") from None
    except pymysql.err.OperationalError as exc:
        code = exc.args[0] if exc.args else 0
        message = exc.args[1] if len(exc.args) > 1 else str(exc)
        if code in _DENIED:
            raise BackendError(f"{what}: denied ({code}: {message}); the status user needs "
                               "only USAGE") from None
        failure = resolution_failure(exc)
        if failure is not None:  # peers are asked by their DNS names: say when DNS failed
            raise BackendUnavailable(f"{what}: cannot resolve {endpoint.host} "
                                     f"(DNS: {failure.strerror})") from None
        raise BackendUnavailable(f"{what}: {code}: {message}") from None
    except pymysql.err.MySQLError as exc:
        raise BackendError(f"{what}: {type(exc).__name__}: {exc}") from None
    except OSError as exc:
        raise BackendUnavailable(f"{what}: {exc.strerror or exc}") from None
    return {str(name): "" if value is None else str(value) for name, value in rows}
