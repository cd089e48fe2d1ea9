"""The commit notices of a SQLite read store: one poller per process and file.

SQLite has no change feed across processes, so one watcher per process (however many
subscribers it serves) asks the file every ``interval`` seconds whether anything committed
since (``PRAGMA data_version``, answered from the file's header, no table read); only when
something did, it reads the checkpoints once and publishes those that moved.
"""

from __future__ import annotations

import asyncio
import sqlite3

from bicameral.commits import Commits, Watcher
from bicameral.drivers.sqlite import connect
from bicameral.errors import BackendError

__all__ = ["POLL_INTERVAL", "sqlite_watcher"]

POLL_INTERVAL = 0.1
"""Seconds between two looks at the file, per process."""


def _checkpoints(conn: sqlite3.Connection) -> dict[str, int]:
    return dict(conn.execute("SELECT name, position FROM checkpoints").fetchall())


def sqlite_watcher(path: str, interval: float = POLL_INTERVAL) -> Watcher:
    """Returns the watcher publishing the checkpoints committed to the file at ``path``."""

    async def watch(commits: Commits) -> None:
        try:
            conn = connect(path)
        except sqlite3.Error as exc:
            raise BackendError(f"cannot watch read store {path}: {exc}") from exc
        try:
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            seen = _checkpoints(conn)
            commits.connected()
            while True:
                await asyncio.sleep(interval)
                now = conn.execute("PRAGMA data_version").fetchone()[0]
                if now == version:
                    continue
                version, before, seen = now, seen, _checkpoints(conn)
                commits.publish(n for n, p in seen.items() if before.get(n) != p)
        except sqlite3.Error as exc:
            raise BackendError(f"watching read store {path}: {exc}") from exc
        finally:
            conn.close()

    return watch
