"""PostgreSQL plumbing shared by the postgres adapters: URLs, database creation, schema, errors.

A URL may carry ``create_database=true`` in its query string (a missing database is then
created, through the ``postgres`` maintenance database, on first connect; without it a missing
database is a ConfigurationError naming it, so a typo never starts an empty store) and
``pool_size=N`` (connections per store and process). Schema upgrades run under one advisory
lock, so processes starting together apply each step once.

A pooled connection goes back to its pool without asyncpg's reset query (``UNLISTEN *``,
``RESET ALL``, ...: one more round trip for every use of the pool): bicameral keeps no session
state on pooled connections (its ``LISTEN``s run on connections of their own, its advisory locks
are transaction locks). asyncpg still rolls back a transaction left open.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from bicameral.errors import BackendError, ConfigurationError

__all__ = [
    "ERRORS",
    "SCHEMA_LOCK",
    "PostgresUrl",
    "backend_errors",
    "connect",
    "create_pool",
    "migrate",
    "quoted",
]

ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)
"""Driver and network errors the adapters translate into BackendError."""

_OPTION = "create_database"
_RETRIES = 8
SCHEMA_LOCK = 0x62696361
"""The advisory lock key every bicameral schema change runs under ("bica")."""
_SCHEMA_TABLE = (
    "CREATE TABLE IF NOT EXISTS bicameral_schema "
    "(component text PRIMARY KEY, version integer NOT NULL)"
)


def quoted(identifier: str) -> str:
    """Returns ``identifier`` as a quoted SQL identifier."""
    return '"' + identifier.replace('"', '""') + '"'


class PostgresUrl:
    """A ``postgresql://`` URL split into the DSN for asyncpg and bicameral's own options."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("postgresql", "postgres"):
            raise ConfigurationError(f"{url!r} is not a postgresql:// URL")
        query = parse_qsl(parts.query, keep_blank_values=True)
        options = dict(query)
        self.create_database = _flag(options.get(_OPTION, "false"), url)
        self.pool_size: int | None = None
        if "pool_size" in options:
            try:
                self.pool_size = int(options["pool_size"])
            except ValueError:
                self.pool_size = 0
            if self.pool_size < 1:
                raise ConfigurationError(f"pool_size must be a whole number >= 1 in {url!r}")
        kept = urlencode([(k, v) for k, v in query if k not in (_OPTION, "pool_size")])
        self.dsn = urlunsplit(parts._replace(query=kept))
        self.database = parts.path.lstrip("/") or None
        self._parts = parts._replace(query=kept)

    @property
    def where(self) -> str:
        """Returns ``database at host:port`` for messages (no user, no password)."""
        host = self._parts.hostname or "localhost"
        port = self._parts.port or 5432
        return f"{self.database} at {host}:{port}"

    def maintenance_dsn(self) -> str:
        """Returns the DSN of the ``postgres`` database on the same server."""
        return urlunsplit(self._parts._replace(path="/postgres"))


def _flag(value: str, url: str) -> bool:
    lowered = value.lower()
    if lowered not in ("true", "false", "1", "0", "yes", "no"):
        raise ConfigurationError(f"{_OPTION} must be true or false in {url!r}")
    return lowered in ("true", "1", "yes")


@contextlib.contextmanager
def backend_errors(what: str) -> Iterator[None]:
    """Translates driver and network errors raised inside into BackendError."""
    try:
        yield
    except ERRORS as exc:
        raise BackendError(f"{what}: {type(exc).__name__}: {exc}") from exc


async def _create_database(url: PostgresUrl) -> None:
    assert url.database is not None
    conn = await _connect(url.maintenance_dsn())
    try:
        await conn.execute(f"CREATE DATABASE {quoted(url.database)}")
    except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
        pass  # another process created it first
    finally:
        await conn.close()


async def _connect(dsn: str, **kwargs: Any) -> Any:
    """Returns a connection, retrying a few times while the server is full or starting."""
    for attempt in range(_RETRIES):
        try:
            return await asyncpg.connect(dsn, **kwargs)
        except (asyncpg.TooManyConnectionsError, asyncpg.CannotConnectNowError):
            if attempt == _RETRIES - 1:
                raise
            await asyncio.sleep(0.1 * (attempt + 1))
    raise AssertionError("unreachable")


async def connect(url: PostgresUrl, **kwargs: Any) -> Any:
    """Returns a new asyncpg connection, creating the database first when missing and allowed."""
    with backend_errors(f"cannot connect to {url.database}"):
        try:
            return await _connect(url.dsn, **kwargs)
        except asyncpg.InvalidCatalogNameError:
            if url.database is None:
                raise
            if not url.create_database:
                raise ConfigurationError(
                    f"database {url.where} does not exist: create it, or add "
                    f"?{_OPTION}=true to its URL to let bicameral create it"
                ) from None
        await _create_database(url)
        return await _connect(url.dsn, **kwargs)


async def _keep_session(_conn: Any) -> None:
    """Resets nothing more than asyncpg itself does (rolling back an open transaction)."""


async def create_pool(url: PostgresUrl, *, max_size: int = 4) -> Any:
    """Returns a started asyncpg pool, creating the database first when missing and allowed.

    The URL's ``pool_size`` option, when given, overrides ``max_size``. Released connections
    are not reset beyond rolling back an open transaction (see the module's docstring).
    """
    max_size = url.pool_size or max_size
    first = await connect(url)  # creates the database if needed
    await first.close()
    with backend_errors(f"cannot connect to {url.database}"):
        return await asyncpg.create_pool(
            url.dsn, min_size=1, max_size=max_size, reset=_keep_session
        )


async def migrate(conn: Any, component: str, steps: Sequence[str]) -> None:
    """Runs the steps of ``component``'s schema not yet applied, in one locked transaction."""
    with backend_errors(f"cannot upgrade the {component} schema"):
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK)
            await conn.execute(_SCHEMA_TABLE)
            done = await conn.fetchval(
                "SELECT version FROM bicameral_schema WHERE component = $1", component
            )
            done = int(done or 0)
            if done > len(steps):
                raise ConfigurationError(
                    f"the {component} schema is at version {done}, newer than this "
                    f"bicameral ({len(steps)}); upgrade bicameral"
                )
            for step in steps[done:]:
                await conn.execute(step)
            if done < len(steps):
                await conn.execute(
                    "INSERT INTO bicameral_schema (component, version) VALUES ($1, $2) "
                    "ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                    component,
                    len(steps),
                )
