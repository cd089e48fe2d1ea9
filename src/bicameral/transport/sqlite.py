"""SqliteTransport: the embedded transport, one SQLite file shared by every local service.

Each source's events are kept by position with their ids unique, so a republished overlap is
dropped; a subscriber's acknowledged position is stored per consumer, so it survives restarts.
Other processes' publishes are seen by polling; this process's wake subscribers at once.

Publishes and acknowledgements are written by a writer thread (``drivers.sqlite.Writer``) that
commits every write waiting in its queue in one transaction: the event loop never waits on an
fsync, and the relays of several services share one. Reads use their own connection.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
from collections.abc import Sequence

from bicameral.consistency import Notifier
from bicameral.drivers.resources import resource
from bicameral.drivers.sqlite import Job, Writer, connect
from bicameral.envelope import Envelope, decode, encode
from bicameral.errors import BackendError, OverloadedError

__all__ = ["SqliteSubscription", "SqliteTransport"]

SCHEMA = resource("bicameral.transport", "sqlite.sql")
"""The schema (``sqlite.sql``), created if missing at every start."""
_POLL = 0.05


class SqliteTransport:
    """Carries events between services through one SQLite file."""

    def __init__(self, path: str, *, synchronous: str = "FULL", max_queue: int = 10_000) -> None:
        self.path = path
        self.synchronous = synchronous
        self.max_queue = max_queue
        self._conn: sqlite3.Connection | None = None
        self._writer: Writer | None = None
        self.notifier = Notifier()

    async def start(self) -> None:
        """Opens the file, creates the schema and starts the writer thread (idempotent)."""
        if self._conn is None:
            try:
                writer = connect(self.path, self.synchronous)
                writer.executescript(SCHEMA)
                self._conn = connect(self.path, self.synchronous)
            except sqlite3.Error as exc:
                raise BackendError(f"cannot open transport {self.path}: {exc}") from exc
            self._writer = Writer(writer, 512, self.max_queue, "bicameral-sqlite-transport")
            self._writer.start()

    async def close(self) -> None:
        """Stops the writer after its queued writes and closes the connections."""
        if self._writer is not None:
            writer, self._writer = self._writer, None
            await writer.stop()
            writer.conn.close()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @property
    def conn(self) -> sqlite3.Connection:
        """Returns the open connection for reads."""
        if self._conn is None:
            raise BackendError("transport is not started")
        return self._conn

    async def write(self, what: str, job: Job) -> None:
        """Runs ``job`` on the writer thread; returns once its transaction committed."""
        writer = self._writer
        if writer is None or not writer.is_alive():
            raise BackendError(f"transport {what} failed: its writer is not running")
        try:
            future = writer.submit(job)
        except queue.Full:
            raise OverloadedError(
                f"transport {self.path}: {self.max_queue} writes wait already; try again shortly"
            ) from None
        try:
            await future
        except sqlite3.Error as exc:
            raise BackendError(f"transport {what} failed: {exc}") from exc

    async def ping(self) -> None:
        """Returns once the file answers a read and the writer thread runs."""
        if self._writer is None or not self._writer.is_alive():
            raise BackendError(f"transport {self.path}: its writer is not running")
        try:
            self.conn.execute("SELECT 1").fetchone()
        except sqlite3.Error as exc:
            raise BackendError(f"transport {self.path}: {exc}") from exc

    async def publish(self, source: str, envelopes: Sequence[Envelope]) -> None:
        """Writes events in one transaction; ids already held are dropped."""
        rows = [(source, e.position, e.id, encode(e)) for e in envelopes]

        def job(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT OR IGNORE INTO messages (source, position, id, body) VALUES (?, ?, ?, ?)",
                rows,
            )

        await self.write("publish", job)
        self.notifier.notify()

    async def subscribe(
        self, source: str, consumer: str, after_position: int
    ) -> SqliteSubscription:
        """Returns a durable subscription for ``consumer`` to ``source``."""
        row = self.conn.execute(
            "SELECT position FROM consumers WHERE name = ? AND source = ?", (consumer, source)
        ).fetchone()
        acked = int(row[0]) if row else 0
        return SqliteSubscription(self, source, consumer, max(acked, after_position))

    async def head(self, source: str) -> int:
        """Returns the highest position held for ``source``."""
        row = self.conn.execute(
            "SELECT COALESCE(MAX(position), 0) FROM messages WHERE source = ?", (source,)
        ).fetchone()
        return int(row[0])


class SqliteSubscription:
    """Delivers one source's events above the consumer's position, each once per subscription."""

    def __init__(self, transport: SqliteTransport, source: str, consumer: str, after: int) -> None:
        self._transport = transport
        self._source = source
        self._consumer = consumer
        self._after = after
        self._cursor = after

    async def fetch(self, max_events: int, timeout: float) -> list[Envelope]:
        """Returns the next events, waiting up to ``timeout`` for one."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            rows = self._transport.conn.execute(
                "SELECT body FROM messages WHERE source = ? AND position > ? "
                "ORDER BY position LIMIT ?",
                (self._source, self._cursor, max_events),
            ).fetchall()
            left = deadline - loop.time()
            if rows or left <= 0:
                found = [decode(body) for (body,) in rows]
                if found:
                    self._cursor = found[-1].position
                return found
            await self._transport.notifier.wait(min(left, _POLL))

    async def ack(self, envelopes: Sequence[Envelope]) -> None:
        """Stores the consumer's position past the acknowledged events."""
        if not envelopes:
            return
        self._after = after = max(self._after, max(e.position for e in envelopes))
        consumer, source = self._consumer, self._source

        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO consumers (name, source, position) VALUES (?, ?, ?) "
                "ON CONFLICT (name, source) DO UPDATE SET position = "
                "MAX(consumers.position, excluded.position)",
                (consumer, source, after),
            )

        await self._transport.write("ack", job)

    async def close(self) -> None:
        """Does nothing: the position is already stored."""
