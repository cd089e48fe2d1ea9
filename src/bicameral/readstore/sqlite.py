"""SqliteReadStore: the read store port on one SQLite file, a table per collection.

Documents are JSON text; each declared index is an expression index on ``json_extract``.
Read models can always be rebuilt from the log, and the checkpoint commits in the same
transaction as the documents, so ``synchronous=NORMAL`` loses at most a suffix of both
together on power loss, which the projector then folds again.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from bicameral.commits import Commits
from bicameral.drivers.sqlite import connect
from bicameral.errors import BackendError
from bicameral.parking import Failure, Park, ParkedSequence, Skipped, event_of, event_text
from bicameral.ports import Changes
from bicameral.readstore import checked_name
from bicameral.readstore.sqlite_commits import sqlite_watcher

__all__ = ["SqliteReadStore"]

_TABLES = """
CREATE TABLE IF NOT EXISTS checkpoints (name TEXT PRIMARY KEY, position INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS leases (name TEXT PRIMARY KEY, owner TEXT NOT NULL, until REAL NOT NULL);
CREATE TABLE IF NOT EXISTS parked_sequences (
    id TEXT PRIMARY KEY, service TEXT NOT NULL, consumer TEXT NOT NULL, key TEXT NOT NULL,
    error TEXT NOT NULL, message TEXT NOT NULL, traceback TEXT NOT NULL,
    attempts INTEGER NOT NULL, first_failed TEXT NOT NULL, last_failed TEXT NOT NULL,
    UNIQUE (consumer, key)
);
CREATE TABLE IF NOT EXISTS parked_events (
    sequence TEXT NOT NULL, position INTEGER NOT NULL, event_id TEXT NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (sequence, position)
);
CREATE TABLE IF NOT EXISTS parked_skips (n INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL);
"""
_HEADER = (
    "id, service, consumer, key, error, message, traceback, attempts, first_failed, last_failed"
)


class _Refused(Exception):
    """Rolls a transaction back: a park or settle did not match what is stored."""


def _table(collection: str) -> str:
    return '"c_' + checked_name(collection) + '"'


class SqliteReadStore:
    """Query-side documents of one service in one SQLite file."""

    def __init__(self, path: str, *, synchronous: str = "NORMAL") -> None:
        self.path = path
        self.synchronous = synchronous
        self._conn: sqlite3.Connection | None = None
        self._declared: set[str] = set()
        self._commits = Commits(sqlite_watcher(path), name=path)

    def commits(self) -> Commits:
        """Returns the notices of commits to the file, by any process (polled: see
        ``bicameral.readstore.sqlite_commits``)."""
        return self._commits

    async def start(self) -> None:
        """Opens the file and creates the checkpoint table (idempotent)."""
        if self._conn is not None:
            return
        try:
            self._conn = connect(self.path, self.synchronous)
            self._conn.executescript(_TABLES)
        except sqlite3.Error as exc:
            raise BackendError(f"cannot open read store {self.path}: {exc}") from exc

    async def close(self) -> None:
        """Stops watching commits and closes the connection."""
        await self._commits.stop()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @property
    def conn(self) -> sqlite3.Connection:
        """Returns the open connection."""
        if self._conn is None:
            raise BackendError("read store is not started")
        return self._conn

    async def ping(self) -> None:
        """Returns once the file answers a read."""
        try:
            self.conn.execute("SELECT 1").fetchone()
        except sqlite3.Error as exc:
            raise BackendError(f"read store {self.path}: {exc}") from exc

    def _ensure(self, collection: str) -> str:
        table = _table(collection)
        if collection not in self._declared:
            self.conn.execute(
                f"CREATE TABLE IF NOT EXISTS {table} (key TEXT PRIMARY KEY, body TEXT NOT NULL)"
            )
            self._declared.add(collection)
        return table

    async def declare(self, collection: str, indexes: Sequence[str] = ()) -> None:
        """Creates a collection's table and an index per field if missing."""
        table = self._ensure(collection)
        for field in indexes:
            checked_name(field)
            self.conn.execute(
                f'CREATE INDEX IF NOT EXISTS "i_{collection}_{field}" '
                f"ON {table} (json_extract(body, '$.{field}'))"
            )

    async def get(self, collection: str, key: str) -> dict[str, Any] | None:
        """Returns one document, or None."""
        row = self.conn.execute(
            f"SELECT body FROM {self._ensure(collection)} WHERE key = ?", (key,)
        ).fetchone()
        return orjson.loads(row[0]) if row else None

    async def get_many(self, collection: str, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Returns the documents found among ``keys``, 500 keys to a query."""
        table = self._ensure(collection)
        found: dict[str, dict[str, Any]] = {}
        keys = list(keys)
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            rows = self.conn.execute(f"SELECT key, body FROM {table} WHERE key IN ({marks})", chunk)
            found.update((key, orjson.loads(body)) for key, body in rows)
        return found

    async def find(
        self, collection: str, field: str, value: Any
    ) -> list[tuple[str, dict[str, Any]]]:
        """Returns ``(key, document)`` pairs whose ``field`` equals ``value``, by key."""
        rows = self.conn.execute(
            f"SELECT key, body FROM {self._ensure(collection)} "
            f"WHERE json_extract(body, '$.{checked_name(field)}') = ? ORDER BY key",
            (value,),
        )
        return [(key, orjson.loads(body)) for key, body in rows]

    async def all(self, collection: str) -> list[tuple[str, dict[str, Any]]]:
        """Returns every ``(key, document)`` pair of a collection, by key."""
        rows = self.conn.execute(f"SELECT key, body FROM {self._ensure(collection)} ORDER BY key")
        return [(key, orjson.loads(body)) for key, body in rows]

    async def commit(
        self,
        checkpoint: str,
        expected: int,
        position: int,
        changes: Changes,
        parked: Sequence[Park] = (),
    ) -> bool:
        """Writes ``changes`` and ``parked`` and moves the checkpoint in one transaction, if at
        ``expected``."""
        conn = self.conn
        tables = {c: self._ensure(c) for c, _ in changes}
        try:
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute(
                "SELECT position FROM checkpoints WHERE name = ?", (checkpoint,)
            ).fetchone()
            if (int(row[0]) if row else 0) != expected:
                conn.execute("ROLLBACK")
                return False
            self._write(tables, changes)
            self._park(parked)
            conn.execute(
                "INSERT INTO checkpoints (name, position) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET position = excluded.position",
                (checkpoint, position),
            )
            conn.execute("COMMIT")
        except _Refused:
            conn.execute("ROLLBACK")
            return False
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise BackendError(f"read store commit failed: {exc}") from exc
            raise
        return True

    def _write(self, tables: dict[str, str], changes: Changes) -> None:
        conn = self.conn
        for (collection, key), doc in changes.items():
            if doc is None:
                conn.execute(f"DELETE FROM {tables[collection]} WHERE key = ?", (key,))
            else:
                conn.execute(
                    f"INSERT OR REPLACE INTO {tables[collection]} (key, body) VALUES (?, ?)",
                    (key, orjson.dumps(doc).decode()),
                )

    def _park(self, parked: Sequence[Park]) -> None:
        conn = self.conn
        for park in parked:
            row = conn.execute(
                "SELECT id FROM parked_sequences WHERE consumer = ? AND key = ?",
                (park.consumer, park.key),
            ).fetchone()
            if (park.failure is not None) == (row is not None):
                raise _Refused
            if park.failure is not None:
                header = park.header()
                conn.execute(
                    f"INSERT INTO parked_sequences ({_HEADER}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    [header[f] for f in _HEADER.split(", ")],
                )
                sequence = park.sequence
            else:
                sequence = row[0]
            conn.execute(
                "INSERT INTO parked_events (sequence, position, event_id, body) "
                "VALUES (?, ?, ?, ?)",
                (sequence, park.envelope.position, park.envelope.id, event_text(park.envelope)),
            )

    async def checkpoint(self, checkpoint: str) -> int:
        """Returns a checkpoint's position (0 if never committed)."""
        row = self.conn.execute(
            "SELECT position FROM checkpoints WHERE name = ?", (checkpoint,)
        ).fetchone()
        return int(row[0]) if row else 0

    async def checkpoints(self) -> dict[str, int]:
        """Returns every checkpoint by name."""
        return {
            str(n): int(p) for n, p in self.conn.execute("SELECT name, position FROM checkpoints")
        }

    async def drop(self, collections: Sequence[str], checkpoints: Sequence[str]) -> None:
        """Deletes collections and checkpoints."""
        for collection in collections:
            self.conn.execute(f"DROP TABLE IF EXISTS {_table(collection)}")
            self._declared.discard(collection)
        self.conn.executemany(
            "DELETE FROM checkpoints WHERE name = ?", [(name,) for name in checkpoints]
        )

    async def parked_keys(self, consumer: str) -> set[str]:
        """Returns the keys of ``consumer`` with an open parked sequence."""
        rows = self.conn.execute("SELECT key FROM parked_sequences WHERE consumer = ?", (consumer,))
        return {str(key) for (key,) in rows}

    def _sequences(self, where: str = "", args: Sequence[Any] = ()) -> list[ParkedSequence]:
        conn = self.conn
        headers = conn.execute(f"SELECT {_HEADER} FROM parked_sequences {where}", args).fetchall()
        found = []
        for values in headers:
            header = dict(zip(_HEADER.split(", "), values, strict=True))
            rows = conn.execute(
                "SELECT body FROM parked_events WHERE sequence = ? ORDER BY position",
                (header["id"],),
            )
            found.append(ParkedSequence.of(header, [event_of(body) for (body,) in rows]))
        return sorted(found, key=lambda s: (s.first_failed, s.id))

    async def parked(self) -> list[ParkedSequence]:
        """Returns every parked sequence, by first failure time."""
        return self._sequences()

    async def parked_sequence(self, sequence: str) -> ParkedSequence | None:
        """Returns one parked sequence, or None."""
        found = self._sequences("WHERE id = ?", (sequence,))
        return found[0] if found else None

    async def unpark(
        self, sequence: str, event_id: str, changes: Changes, failure: Failure | None = None
    ) -> bool:
        """Settles the first event of a sequence, if it is ``event_id``, in one transaction."""
        conn = self.conn
        tables = {c: self._ensure(c) for c, _ in changes}
        try:
            conn.execute("BEGIN IMMEDIATE")
            head = conn.execute(
                "SELECT event_id, position FROM parked_events WHERE sequence = ? "
                "ORDER BY position LIMIT 1",
                (sequence,),
            ).fetchone()
            if head is None or head[0] != event_id:
                raise _Refused
            if failure is not None:
                conn.execute(
                    "UPDATE parked_sequences SET attempts = attempts + ?, error = ?, "
                    "message = ?, traceback = ?, last_failed = ? WHERE id = ?",
                    (
                        failure.attempts,
                        failure.error,
                        failure.message,
                        failure.traceback,
                        failure.at.isoformat(),
                        sequence,
                    ),
                )
            else:
                self._write(tables, changes)
                self._remove(sequence, head[1])
            conn.execute("COMMIT")
        except _Refused:
            conn.execute("ROLLBACK")
            return False
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise BackendError(f"read store unpark failed: {exc}") from exc
            raise
        return True

    def _remove(self, sequence: str, position: int | None) -> None:
        """Removes one parked event (all when ``position`` is None) and an emptied sequence."""
        conn = self.conn
        if position is None:
            conn.execute("DELETE FROM parked_events WHERE sequence = ?", (sequence,))
        else:
            conn.execute(
                "DELETE FROM parked_events WHERE sequence = ? AND position = ?",
                (sequence, position),
            )
        left = conn.execute(
            "SELECT 1 FROM parked_events WHERE sequence = ? LIMIT 1", (sequence,)
        ).fetchone()
        if left is None:
            conn.execute("DELETE FROM parked_sequences WHERE id = ?", (sequence,))

    async def skip(self, sequence: str, reason: str, by: str) -> Skipped | None:
        """Removes a parked sequence and records the skip, in one transaction."""
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            found = self._sequences("WHERE id = ?", (sequence,))
            if not found:
                raise _Refused
            record = Skipped.of(found[0], reason, by, datetime.now(UTC))
            self._remove(sequence, None)
            conn.execute(
                "INSERT INTO parked_skips (body) VALUES (?)",
                (orjson.dumps(record.to_dict()).decode(),),
            )
            conn.execute("COMMIT")
        except _Refused:
            conn.execute("ROLLBACK")
            return None
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise BackendError(f"read store skip failed: {exc}") from exc
            raise
        return record

    async def skipped(self) -> list[Skipped]:
        """Returns the skip records, oldest first."""
        rows = self.conn.execute("SELECT body FROM parked_skips ORDER BY n")
        return [Skipped.from_dict(orjson.loads(body)) for (body,) in rows]

    async def acquire_lease(self, name: str, owner: str, ttl: float) -> bool:
        """Takes or renews a lease unless another owner holds it unexpired."""
        now = time.time()
        cursor = self.conn.execute(
            "INSERT INTO leases (name, owner, until) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until "
            "WHERE leases.owner = excluded.owner OR leases.until <= ?",
            (name, owner, now + ttl, now),
        )
        return cursor.rowcount == 1

    async def release_lease(self, name: str, owner: str) -> None:
        """Gives up a lease held by ``owner``."""
        self.conn.execute("DELETE FROM leases WHERE name = ? AND owner = ?", (name, owner))

    async def leases(self, prefix: str) -> dict[str, str]:
        """Returns unexpired leases under ``prefix``."""
        rows = self.conn.execute(
            "SELECT name, owner FROM leases WHERE substr(name, 1, ?) = ? AND until > ?",
            (len(prefix), prefix, time.time()),
        )
        return {str(n): str(o) for n, o in rows}
