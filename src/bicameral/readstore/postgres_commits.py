"""The commit notices of a PostgreSQL read store: one ``LISTEN`` connection per process.

A trigger on the checkpoint table (schema version 3 of ``postgres.sql``) sends a ``NOTIFY``
on channel ``bicameral_commits`` with the checkpoint's name whenever a commit moves one; the
server delivers it when that transaction commits, to every process listening.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from bicameral.commits import Commits, Watcher
from bicameral.drivers.postgres import PostgresUrl, backend_errors, connect
from bicameral.errors import BackendError

__all__ = ["CHANNEL", "postgres_watcher"]

CHANNEL = "bicameral_commits"


def postgres_watcher(url: PostgresUrl) -> Watcher:
    """Returns the watcher publishing the checkpoints committed to the database at ``url``."""

    async def watch(commits: Commits) -> None:
        conn = await connect(url)
        lost = asyncio.Event()

        def notice(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
            commits.publish((payload,))

        try:
            conn.add_termination_listener(lambda _conn: lost.set())
            with backend_errors("cannot listen for read store commits"):
                await conn.add_listener(CHANNEL, notice)
            commits.connected()
            await lost.wait()
            raise BackendError("the read store's notice connection was lost")
        finally:
            with contextlib.suppress(Exception):
                await conn.close(timeout=1)

    return watch
