"""A throwaway PostgreSQL database per test session, so parallel test runs never collide.

Needs the ``postgres`` extra (asyncpg); import it only where PostgreSQL tests run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Iterator

from bicameral.drivers.postgres import PostgresUrl, connect, quoted

__all__ = ["SERVER_URL", "drop_database", "temporary_database"]

SERVER_URL = os.environ.get("BICAMERAL_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
"""The server tests create their databases on (no database name)."""


async def _admin(sql: str) -> None:
    conn = await connect(PostgresUrl(f"{SERVER_URL}/postgres"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.contextmanager
def temporary_database(prefix: str = "bicameral_test") -> Iterator[str]:
    """Yields the URL of a new, empty database; drops it (closing its connections) after.

    Runs outside any event loop (a session fixture, say).
    """
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(f"CREATE DATABASE {quoted(name)}"))
    try:
        yield f"{SERVER_URL}/{name}"
    finally:
        asyncio.run(drop_database(name))


async def drop_database(name_or_url: str) -> None:
    """Drops a database (by name, or by URL) if it exists, closing its connections first."""
    name = name_or_url.rsplit("/", 1)[-1].split("?", 1)[0]
    await _admin(f"DROP DATABASE IF EXISTS {quoted(name)} WITH (FORCE)")
