"""SQLite connections as every SQLite adapter opens them: WAL mode, autocommit, waiting on locks."""

from __future__ import annotations

import sqlite3
import time

from bicameral.files import private_file

__all__ = ["connect"]


def connect(path: str, synchronous: str = "FULL") -> sqlite3.Connection:
    """Returns a connection to ``path`` in WAL mode, autocommit, waiting on locks.

    A new database file is made with mode 0600 (in folders of mode 0700), so its ``-wal`` and
    ``-shm`` files are private too.
    """
    if path != ":memory:" and not path.startswith("file:"):
        private_file(path)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    for attempt in range(100):
        # Switching a new file to WAL takes an exclusive lock that the busy timeout does not
        # wait for: processes opening one file at once retry here.
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 99:
                conn.close()
                raise
            time.sleep(0.05)
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn
