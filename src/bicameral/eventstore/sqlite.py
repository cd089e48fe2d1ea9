"""SqliteEventStore: the event store port on one SQLite file (WAL), the embedded default.

One writer thread owns the write connection and commits every append waiting in its queue in
one transaction (group commit), each inside its own savepoint, so one command's conflict never
spoils another's. Positions are assigned under SQLite's write lock, so they are gapless and in
commit order, across processes too. Readers use their own connection on the event loop.

The writer's queue is bounded (``max_queue`` jobs): a write that finds it full fails at once
with ``OverloadedError`` (503 with Retry-After over HTTP) instead of waiting without end. The
writer survives anything one batch throws: that batch's jobs fail with a ``BackendError``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from bicameral.consistency import Notifier
from bicameral.drivers.resources import resource
from bicameral.drivers.sqlite import Writer, connect
from bicameral.envelope import Envelope
from bicameral.errors import (
    BackendError,
    BicameralError,
    ConcurrencyError,
    ConfigurationError,
    OverloadedError,
)
from bicameral.ports import AppendResult, Snapshot, StreamAppend

__all__ = ["SqliteEventStore"]

log = logging.getLogger("bicameral.eventstore.sqlite")

SCHEMA = resource("bicameral.eventstore", "sqlite.sql")
"""The schema (``sqlite.sql``), created if missing at every start."""

_COLUMNS = "id, type, stream_id, time, stream_version, position, data, metadata"
_POLL = 0.05


class SqliteEventStore:
    """The event store of one service in one SQLite file."""

    def __init__(
        self,
        service: str,
        path: str,
        *,
        synchronous: str = "FULL",
        create: bool = True,
        max_queue: int = 10_000,
    ) -> None:
        self.service = service
        self.path = path
        self.synchronous = synchronous
        self.create = create
        """Whether ``start`` may create a missing file; otherwise it is a ConfigurationError."""
        self.max_queue = max_queue
        self._writer: Writer | None = None
        self._reader: sqlite3.Connection | None = None
        self._notifier: Notifier | None = None

    async def start(self) -> None:
        """Opens the file, creates the schema and starts the writer thread (idempotent)."""
        if self._writer is not None:
            return
        if not self.create and not await asyncio.to_thread(os.path.exists, self.path):
            raise ConfigurationError(
                f"event store {self.path} does not exist: add ?create_database=true to its "
                "URL to let bicameral create it"
            )
        try:
            writer = connect(self.path, self.synchronous)
            writer.executescript(SCHEMA)
            self._reader = connect(self.path, self.synchronous)
        except sqlite3.Error as exc:
            raise BackendError(f"cannot open event store {self.path}: {exc}") from exc
        self._notifier = Notifier()
        self._writer = Writer(writer, max_batch=512, max_queue=self.max_queue)
        self._writer.start()

    async def close(self) -> None:
        """Stops the writer after its queued jobs and closes both connections."""
        if self._writer is None:
            return
        await asyncio.to_thread(self._writer.jobs.put, None)
        await asyncio.to_thread(self._writer.join)
        self._writer.conn.close()
        if self._reader is not None:
            self._reader.close()
        self._writer = None
        self._reader = None

    async def ping(self) -> None:
        """Returns once the file answers a read and the writer thread runs."""
        if self._writer is None or not self._writer.is_alive():
            raise BackendError(f"event store {self.service}: its writer is not running")
        try:
            self._read().execute("SELECT 1").fetchone()
        except sqlite3.Error as exc:
            raise BackendError(f"event store {self.path}: {exc}") from exc

    async def _write(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        if self._writer is None:
            raise BackendError("event store is not started")
        if not self._writer.is_alive():
            raise BackendError(f"event store {self.service}: its writer stopped")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        try:
            self._writer.jobs.put_nowait((fn, loop, future))
        except queue.Full:
            raise OverloadedError(
                f"event store {self.service}: {self.max_queue} writes wait already; "
                "try again shortly"
            ) from None
        return await future

    def _read(self) -> sqlite3.Connection:
        if self._reader is None:
            raise BackendError("event store is not started")
        return self._reader

    async def append(
        self,
        appends: Sequence[StreamAppend],
        *,
        idempotency_key: str | None = None,
        request_hash: str = "",
    ) -> AppendResult:
        """Writes every append atomically, or raises ConcurrencyError and writes nothing."""
        now = datetime.now(UTC)

        def job(conn: sqlite3.Connection) -> AppendResult:
            return _append(conn, self.service, appends, idempotency_key, request_hash, now)

        result: AppendResult = await self._write(job)
        if result.envelopes and self._notifier is not None:
            self._notifier.notify()
        return result

    async def read_stream(self, stream_id: str, after_version: int = 0) -> list[Envelope]:
        """Returns the events of one stream with version above ``after_version``, in order."""
        rows = self._read().execute(
            f"SELECT {_COLUMNS} FROM events WHERE stream_id = ? AND stream_version > ? "
            "ORDER BY stream_version",
            (stream_id, after_version),
        )
        return self._envelopes(rows)

    async def stream_version(self, stream_id: str) -> int:
        """Returns the current version of a stream (0 when it does not exist)."""
        row = (
            self._read()
            .execute("SELECT version FROM streams WHERE stream_id = ?", (stream_id,))
            .fetchone()
        )
        return int(row[0]) if row else 0

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[Envelope]:
        """Returns up to ``limit`` events with position above ``after_position``, in order."""
        rows = self._read().execute(
            f"SELECT {_COLUMNS} FROM events WHERE position > ? ORDER BY position LIMIT ?",
            (after_position, limit),
        )
        return self._envelopes(rows)

    async def head(self) -> int:
        """Returns the highest committed position (0 when empty)."""
        row = self._read().execute("SELECT COALESCE(MAX(position), 0) FROM events").fetchone()
        return int(row[0])

    async def wait_for(self, after_position: int, timeout: float) -> bool:
        """Returns True once a position above ``after_position`` is visible, False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if await self.head() > after_position:
                return True
            left = deadline - loop.time()
            if left <= 0:
                return False
            assert self._notifier is not None
            await self._notifier.wait(min(left, _POLL))

    def wake(self) -> None:
        """Wakes the readers waiting for a commit now: another process just committed (the
        readers would see it at their next poll otherwise)."""
        if self._notifier is not None:
            self._notifier.notify()

    async def idempotent_result(self, key: str) -> AppendResult | None:
        """Returns the result recorded under an idempotency key, or None."""
        return _recorded(self._read(), key)

    async def load_checkpoint(self, name: str) -> int:
        """Returns a command-side checkpoint (0 if never saved)."""
        row = (
            self._read()
            .execute("SELECT position FROM checkpoints WHERE name = ?", (name,))
            .fetchone()
        )
        return int(row[0]) if row else 0

    async def save_checkpoint(
        self, name: str, position: int, *, expected: int | None = None
    ) -> bool:
        """Writes a command-side checkpoint (only while at ``expected``, if given)."""

        def job(conn: sqlite3.Connection) -> bool:
            if expected is not None:
                row = conn.execute(
                    "SELECT position FROM checkpoints WHERE name = ?", (name,)
                ).fetchone()
                if (int(row[0]) if row else 0) != expected:
                    return False
            conn.execute(
                "INSERT INTO checkpoints (name, position) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET position = excluded.position",
                (name, position),
            )
            return True

        written: bool = await self._write(job)
        return written

    async def checkpoints(self) -> dict[str, int]:
        """Returns every command-side checkpoint by name."""
        rows = self._read().execute("SELECT name, position FROM checkpoints")
        return {str(name): int(pos) for name, pos in rows}

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        """Writes ``snapshot`` unless the stream has one of its schema at its version or above."""
        state = orjson.dumps(snapshot.state)

        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO snapshots (stream_id, schema, version, state) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (stream_id) DO UPDATE SET schema = excluded.schema, "
                "version = excluded.version, state = excluded.state "
                "WHERE snapshots.schema <> excluded.schema OR snapshots.version < excluded.version",
                (snapshot.stream_id, snapshot.schema, snapshot.version, state),
            )

        await self._write(job)

    async def load_snapshot(self, stream_id: str, schema: str) -> Snapshot | None:
        """Returns the stream's snapshot if it was taken with ``schema``, else None."""
        row = (
            self._read()
            .execute(
                "SELECT version, state FROM snapshots WHERE stream_id = ? AND schema = ?",
                (stream_id, schema),
            )
            .fetchone()
        )
        if row is None:
            return None
        return Snapshot(stream_id, schema, int(row[0]), orjson.loads(row[1]))

    async def event_types(self) -> set[str]:
        """Returns every event type stored in the log (one scan of it)."""
        return {str(t) for (t,) in self._read().execute("SELECT DISTINCT type FROM events")}

    def _envelopes(self, rows: Iterable[Any]) -> list[Envelope]:
        """Returns the envelopes of ``_COLUMNS`` rows (in one loop: a rebuild decodes many)."""
        service, loads, when = self.service, orjson.loads, datetime.fromisoformat
        return [
            Envelope(i, kind, service, subject, when(at), version, position, loads(d), loads(m))
            for i, kind, subject, at, version, position, d, m in rows
        ]


def _recorded(conn: sqlite3.Connection, key: str) -> AppendResult | None:
    row = conn.execute(
        "SELECT request_hash, position, versions FROM idempotency WHERE key = ?", (key,)
    ).fetchone()
    if row is None:
        return None
    return AppendResult(int(row[1]), orjson.loads(row[2]), str(row[0]), replayed=True)


def _append(
    conn: sqlite3.Connection,
    service: str,
    appends: Sequence[StreamAppend],
    key: str | None,
    request_hash: str,
    now: datetime,
) -> AppendResult:
    if key is not None:
        earlier = _recorded(conn, key)
        if earlier is not None:
            return earlier
    versions: dict[str, int] = {}
    for append in appends:
        row = conn.execute(
            "SELECT version FROM streams WHERE stream_id = ?", (append.stream_id,)
        ).fetchone()
        actual = int(row[0]) if row else 0
        if append.expected_version is not None and append.expected_version != actual:
            raise ConcurrencyError(append.stream_id, append.expected_version, actual)
        versions[append.stream_id] = actual
    position = int(conn.execute("SELECT COALESCE(MAX(position), 0) FROM events").fetchone()[0])
    stamp = now.isoformat()
    written: list[Envelope] = []
    rows: list[tuple[Any, ...]] = []
    for append in appends:
        version = versions[append.stream_id]
        for new in append.events:
            version += 1
            position += 1
            env = Envelope(
                new.id,
                new.type,
                service,
                append.stream_id,
                now,
                version,
                position,
                new.data,
                new.metadata,
            )
            written.append(env)
            rows.append(
                (
                    position,
                    new.id,
                    append.stream_id,
                    version,
                    new.type,
                    stamp,
                    orjson.dumps(new.data),
                    orjson.dumps(new.metadata),
                )
            )
        versions[append.stream_id] = version
    try:
        conn.executemany(
            "INSERT INTO events (position, id, stream_id, stream_version, type, time, data, "
            "metadata) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    except sqlite3.IntegrityError as exc:
        raise BicameralError(f"event id or stream version already stored: {exc}") from exc
    conn.executemany(
        "INSERT INTO streams (stream_id, version) VALUES (?, ?) "
        "ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version",
        list(versions.items()),
    )
    if key is not None:
        conn.execute(
            "INSERT INTO idempotency (key, request_hash, position, versions) VALUES (?, ?, ?, ?)",
            (key, request_hash, position, orjson.dumps(versions)),
        )
    return AppendResult(position, versions, request_hash, False, written)
