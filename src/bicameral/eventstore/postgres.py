"""PostgresEventStore: the event store port on PostgreSQL (asyncpg), one database per service.

Positions come from a one-row counter (``log_head``) that every append locks first and moves
in its own transaction, so commits happen in position order across processes, a rolled-back
append gives its numbers back (no gaps), and a reader never sees position p+1 before p: the
next writer can only take the lock once the previous one is visible. Readers take no lock.

A writer task commits every append waiting in the store's queue with ONE call of the
``bicameral_append`` function (one round trip, one transaction, one fsync). The function checks
each append against the stream versions left by the appends before it, so a conflict or a
replayed idempotency key is that append's own outcome and never spoils the others; should the
batch fail as a whole (say a reused event id), each append is retried alone to find its error.

The queue is bounded (``max_queue`` appends): an append that finds it full fails at once with
``OverloadedError`` (503 with Retry-After over HTTP) instead of waiting without end. A writer
lane survives anything one batch throws: that batch's appends fail with a ``BackendError``
saying so, and the lane takes the next batch.

Readers in other processes are woken by NOTIFY on ``bicameral_events``, sent after each commit
from a connection of its own, at most one every 2 ms (so notifications coalesce under load and
cost the append path nothing), and poll slowly besides; readers in this process are woken
directly. Processes that never wait do not LISTEN.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

from bicameral.consistency import Notifier
from bicameral.drivers.postgres import (
    ERRORS,
    PostgresUrl,
    backend_errors,
    connect,
    create_pool,
    migrate,
)
from bicameral.drivers.resources import schema_steps
from bicameral.envelope import Envelope
from bicameral.errors import BackendError, BicameralError, ConcurrencyError, OverloadedError
from bicameral.ports import AppendResult, Snapshot, StreamAppend

__all__ = ["CHANNEL", "SCHEMA", "AppendJob", "PostgresEventStore", "append_batch"]

log = logging.getLogger("bicameral.eventstore.postgres")

CHANNEL = "bicameral_events"
"""The LISTEN/NOTIFY channel announcing that new events were committed (no payload)."""

SCHEMA = schema_steps("bicameral.eventstore", "postgres.sql")
"""The event store's schema (``postgres.sql``), one step per version, each applied once."""

_COLUMNS = "id, type, stream_id, time, stream_version, position, data::text, metadata::text"
_CALL = "SELECT * FROM bicameral_append(" + ", ".join(f"${i}" for i in range(1, 17)) + ")"
_POLL = 0.25
_NOTIFY_GAP = 0.002  # the first commit after a lull is announced at once, the rest coalesce
_CONNECTION_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.AdminShutdownError,
)


@dataclass(slots=True)
class AppendJob:
    """One caller's append as the writer sees it: what to write, and where its outcome goes."""

    appends: Sequence[StreamAppend]
    key: str | None
    request_hash: str
    now: datetime
    future: asyncio.Future[AppendResult] | None = None
    outcome: AppendResult | BaseException | None = field(default=None)


async def append_batch(conn: Any, service: str, jobs: Sequence[AppendJob]) -> None:
    """Appends every job in one ``bicameral_append`` call on ``conn``; sets each job's outcome.

    Commits with the caller's transaction, if any (tests wrap it to roll back or stall).
    """
    streams: dict[str, int] = {}
    keys: dict[str, int] = {}
    j_sizes: list[int] = []
    j_kidx: list[int | None] = []
    j_hash: list[str] = []
    j_time: list[datetime] = []
    a_job: list[int] = []
    a_sidx: list[int] = []
    a_expected: list[int | None] = []
    a_count: list[int] = []
    e_ids: list[str] = []
    e_types: list[str] = []
    e_data: list[str] = []
    e_meta: list[str] = []
    e_app: list[int] = []
    e_off: list[int] = []
    dumps = orjson.dumps
    for j, job in enumerate(jobs, 1):
        j_sizes.append(len(job.appends))
        j_kidx.append(None if job.key is None else keys.setdefault(job.key, len(keys) + 1))
        j_hash.append(job.request_hash)
        j_time.append(job.now)
        for append in job.appends:
            a_job.append(j)
            a_sidx.append(streams.setdefault(append.stream_id, len(streams) + 1))
            a_expected.append(append.expected_version)
            a_count.append(len(append.events))
            app = len(a_count)
            for off, new in enumerate(append.events):
                e_ids.append(new.id)
                e_types.append(new.type)
                e_data.append(dumps(new.data).decode())
                e_meta.append(dumps(new.metadata).decode())
                e_app.append(app)
                e_off.append(off)
    row = await conn.fetchrow(
        _CALL,
        list(streams),
        list(keys),
        j_sizes,
        j_kidx,
        j_hash,
        j_time,
        a_job,
        a_sidx,
        a_expected,
        a_count,
        e_ids,
        e_types,
        e_data,
        e_meta,
        e_app,
        e_off,
    )
    status, j_pos, j_rhash, j_vers, c_app, c_actual, a_pos, a_ver = row
    a = 0
    for j, job in enumerate(jobs):
        size = j_sizes[j]
        kind = status[j]
        if kind == "r":
            job.outcome = AppendResult(j_pos[j], orjson.loads(j_vers[j]), j_rhash[j], replayed=True)
        elif kind == "c":
            bad = job.appends[c_app[j] - 1 - a]
            expected = bad.expected_version
            assert expected is not None
            job.outcome = ConcurrencyError(bad.stream_id, expected, c_actual[j])
        else:
            job.outcome = _written(service, job, j_pos[j], a_pos[a : a + size], a_ver[a : a + size])
        a += size


def _written(
    service: str, job: AppendJob, head: int, positions: list[int], versions: list[int]
) -> AppendResult:
    written: list[Envelope] = []
    last: dict[str, int] = {}
    for append, first_pos, first_ver in zip(job.appends, positions, versions, strict=True):
        stream = append.stream_id
        for off, new in enumerate(append.events):
            written.append(
                Envelope(
                    new.id,
                    new.type,
                    service,
                    stream,
                    job.now,
                    first_ver + off,
                    first_pos + off,
                    new.data,
                    new.metadata,
                )
            )
        last[stream] = first_ver + len(append.events) - 1
    return AppendResult(head, last, job.request_hash, False, written)


def _failure(exc: BaseException) -> BicameralError:
    if isinstance(exc, asyncpg.UniqueViolationError):
        return BicameralError(f"event id or stream version already stored: {exc}")
    return BackendError(f"append failed: {type(exc).__name__}: {exc}")


class _Lane:
    """One writer connection: takes every append waiting in the queue and commits them at once.

    A store runs one lane by default; more lanes share its queue and let one batch's round
    trip overlap the next one's wait for the counter lock (the lock still orders commits).
    Measured here, one lane does as well or better: every extra lane hands the lock over
    between backends, and the batches get smaller.
    """

    def __init__(
        self,
        url: PostgresUrl,
        service: str,
        queue: asyncio.Queue[AppendJob | None],
        on_commit: Callable[[], None],
    ) -> None:
        self.url = url
        self.service = service
        self.queue = queue
        self.on_commit = on_commit
        self.max_batch = 1000
        self.conn: Any = None

    async def run(self) -> None:
        """Commits batches until it takes its ``None`` from the queue (after the jobs before)."""
        queue = self.queue
        stopping = False
        while not stopping:
            first = await queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.max_batch and not queue.empty():
                job = queue.get_nowait()
                if job is None:
                    stopping = True
                    break
                batch.append(job)
            await self._guarded(batch)

    async def _guarded(self, batch: list[AppendJob]) -> None:
        """Commits ``batch`` and settles its jobs; whatever it raises fails this batch only."""
        try:
            await self._commit(batch)
        except Exception as exc:
            log.exception("%s: append batch of %d failed", self.service, len(batch))
            self.drop()
            failure = BackendError(
                f"append failed ({type(exc).__name__}: {exc}); it may or may not be stored: "
                "retry with the same Idempotency-Key"
            )
            for job in batch:
                if job.outcome is None:
                    job.outcome = failure
        for job in batch:
            _settle(job)
        try:
            self.on_commit()
        except Exception:
            log.exception("%s: waking readers failed", self.service)

    async def _commit(self, batch: list[AppendJob]) -> None:
        try:
            if self.conn is None or self.conn.is_closed():
                self.conn = await connect(self.url)
            await append_batch(self.conn, self.service, batch)
        except _CONNECTION_ERRORS as exc:
            self.drop()
            failure = BackendError(f"append failed, connection lost: {exc}")
            for job in batch:
                job.outcome = failure
        except BackendError as exc:
            for job in batch:
                job.outcome = exc
        except asyncpg.PostgresError as exc:
            if len(batch) == 1:
                batch[0].outcome = _failure(exc)
                return
            for job in batch:  # find whose append failed: each alone
                await self._commit([job])

    def drop(self) -> None:
        """Closes the connection at once."""
        if self.conn is not None:
            self.conn.terminate()
            self.conn = None


def _settle(job: AppendJob) -> None:
    future = job.future
    if future is None or future.done():
        return
    outcome = job.outcome
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)  # type: ignore[arg-type]


class _Announcer:
    """Sends NOTIFY after commits from its own connection; one at a time, coalescing the rest."""

    def __init__(self, url: PostgresUrl) -> None:
        self.url = url
        self.conn: Any = None
        self.pending = asyncio.Event()
        self.task = asyncio.create_task(self.run(), name="bicameral-pg-notify")

    def announce(self) -> None:
        """Asks for one NOTIFY soon (after the one in flight, if any)."""
        self.pending.set()

    async def run(self) -> None:
        while True:
            await self.pending.wait()
            self.pending.clear()
            try:
                if self.conn is None or self.conn.is_closed():
                    self.conn = await connect(self.url)
                await self.conn.execute(f"NOTIFY {CHANNEL}")
            except (*ERRORS, BackendError):  # readers fall back to polling
                self.close()
                await asyncio.sleep(_POLL)
            except Exception:  # never dies unheard: readers poll meanwhile
                log.exception("NOTIFY failed")
                self.close()
                await asyncio.sleep(_POLL)
            else:
                await asyncio.sleep(_NOTIFY_GAP)

    def close(self) -> None:
        """Closes the connection at once."""
        if self.conn is not None:
            self.conn.terminate()
            self.conn = None

    async def stop(self) -> None:
        """Stops, sending the last NOTIFY still asked for, and closes the connection."""
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        if self.pending.is_set() and self.conn is not None:
            with contextlib.suppress(*ERRORS):
                await self.conn.execute(f"NOTIFY {CHANNEL}")
        with contextlib.suppress(*ERRORS):
            if self.conn is not None:
                await self.conn.close()
        self.conn = None


class PostgresEventStore:
    """The event store of one service in one PostgreSQL database."""

    def __init__(
        self,
        service: str,
        url: str,
        *,
        pool_size: int = 8,
        writers: int = 1,
        max_queue: int = 10_000,
    ):
        self.service = service
        self.url = PostgresUrl(url)
        self.pool_size = pool_size
        self.writers = writers
        self.max_queue = max_queue
        self._pool: Any = None
        self._queue: asyncio.Queue[AppendJob | None] | None = None
        self._lanes: list[tuple[_Lane, asyncio.Task[None]]] = []
        self._listener: Any = None
        self._announcer: _Announcer | None = None
        self._changed = Notifier()

    async def start(self) -> None:
        """Connects (creating the database if allowed), upgrades the schema, starts the writers."""
        if self._queue is not None:
            return
        conn = await connect(self.url)
        try:
            await migrate(conn, "eventstore", SCHEMA)
        finally:
            await conn.close()
        self._pool = await create_pool(self.url, max_size=self.pool_size)
        self._queue = asyncio.Queue(self.max_queue)
        for _ in range(self.writers):
            lane = _Lane(self.url, self.service, self._queue, self._committed)
            task = asyncio.create_task(lane.run(), name=f"bicameral-pg-writer-{self.service}")
            self._lanes.append((lane, task))
        self._announcer = _Announcer(self.url)

    async def close(self) -> None:
        """Stops the writers after their queued appends and closes every connection."""
        queue, self._queue = self._queue, None
        if queue is None:
            return
        for _ in self._lanes:
            await queue.put(None)
        await asyncio.gather(*(task for _, task in self._lanes))
        if self._announcer is not None:
            await self._announcer.stop()
            self._announcer = None
        with contextlib.suppress(*ERRORS):
            for lane, _ in self._lanes:
                if lane.conn is not None:
                    await lane.conn.close()
            if self._listener is not None and not self._listener.is_closed():
                await self._listener.close()
            await self._pool.close()
        self._lanes = []
        self._listener = None
        self._pool = None

    async def ping(self) -> None:
        """Returns once the server answered a query and the writer runs."""
        self._running()
        await self._value("SELECT 1")

    async def _listen(self) -> None:
        self._listener = await connect(self.url)
        with backend_errors("cannot listen for new events"):
            await self._listener.add_listener(CHANNEL, self._wake)

    def _committed(self) -> None:
        self._wake()
        if self._announcer is not None:
            self._announcer.announce()

    def _wake(self, *_: Any) -> None:
        self._changed.notify()

    def _running(self) -> asyncio.Queue[AppendJob | None]:
        if self._queue is None:
            raise BackendError("event store is not started")
        if all(task.done() for _, task in self._lanes):
            raise BackendError(f"event store {self.service}: its writer stopped")
        return self._queue

    async def append(
        self,
        appends: Sequence[StreamAppend],
        *,
        idempotency_key: str | None = None,
        request_hash: str = "",
    ) -> AppendResult:
        """Writes every append atomically, or raises ConcurrencyError and writes nothing."""
        queue = self._running()
        future: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
        job = AppendJob(appends, idempotency_key, request_hash, datetime.now(UTC), future)
        try:
            queue.put_nowait(job)
        except asyncio.QueueFull:
            raise OverloadedError(
                f"event store {self.service}: {queue.qsize()} appends wait already; "
                "try again shortly"
            ) from None
        return await future

    async def _fetch(self, query: str, *args: Any) -> list[Any]:
        if self._pool is None:
            raise BackendError("event store is not started")
        with backend_errors("event store read failed"):
            return list(await self._pool.fetch(query, *args))

    async def _value(self, query: str, *args: Any) -> Any:
        if self._pool is None:
            raise BackendError("event store is not started")
        with backend_errors("event store read failed"):
            return await self._pool.fetchval(query, *args)

    async def read_stream(self, stream_id: str, after_version: int = 0) -> list[Envelope]:
        """Returns the events of one stream with version above ``after_version``, in order."""
        rows = await self._fetch(
            f"SELECT {_COLUMNS} FROM events WHERE stream_id = $1 AND stream_version > $2 "
            "ORDER BY stream_version",
            stream_id,
            after_version,
        )
        return [self._envelope(row) for row in rows]

    async def stream_version(self, stream_id: str) -> int:
        """Returns the current version of a stream (0 when it does not exist)."""
        found = await self._value(
            "SELECT max(stream_version) FROM events WHERE stream_id = $1", stream_id
        )
        return int(found or 0)

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[Envelope]:
        """Returns up to ``limit`` events with position above ``after_position``, in order."""
        rows = await self._fetch(
            f"SELECT {_COLUMNS} FROM events WHERE position > $1 ORDER BY position LIMIT $2",
            after_position,
            limit,
        )
        return [self._envelope(row) for row in rows]

    async def head(self) -> int:
        """Returns the highest committed position (0 when empty)."""
        return int(await self._value("SELECT position FROM log_head"))

    async def wait_for(self, after_position: int, timeout: float) -> bool:
        """Returns True once a position above ``after_position`` is visible, False on timeout.

        Wakes on this store's appends and on NOTIFY from other processes; polls slowly too.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            mark = self._changed.mark()
            if await self.head() > after_position:
                return True
            left = deadline - loop.time()
            if left <= 0:
                return False
            if self._listener is None or self._listener.is_closed():
                with contextlib.suppress(BackendError):
                    await self._listen()
            await self._changed.wait(min(left, _POLL), mark)

    async def idempotent_result(self, key: str) -> AppendResult | None:
        """Returns the result recorded under an idempotency key, or None."""
        rows = await self._fetch(
            "SELECT request_hash, position, versions::text FROM idempotency_keys WHERE key = $1",
            key,
        )
        if not rows:
            return None
        rhash, position, versions = rows[0]
        return AppendResult(int(position), orjson.loads(versions), str(rhash), replayed=True)

    async def load_checkpoint(self, name: str) -> int:
        """Returns a command-side checkpoint (0 if never saved)."""
        found = await self._value("SELECT position FROM command_checkpoints WHERE name = $1", name)
        return int(found or 0)

    async def save_checkpoint(
        self, name: str, position: int, *, expected: int | None = None
    ) -> bool:
        """Writes a command-side checkpoint (only while at ``expected``, if given)."""
        if self._pool is None:
            raise BackendError("event store is not started")
        with backend_errors("cannot save checkpoint"):
            if expected is None:
                await self._pool.execute(
                    "INSERT INTO command_checkpoints (name, position) VALUES ($1, $2) "
                    "ON CONFLICT (name) DO UPDATE SET position = excluded.position",
                    name,
                    position,
                )
                return True
            status = await self._pool.execute(
                "UPDATE command_checkpoints SET position = $2 WHERE name = $1 AND position = $3",
                name,
                position,
                expected,
            )
            if status == "UPDATE 0" and expected == 0:
                status = await self._pool.execute(
                    "INSERT INTO command_checkpoints (name, position) VALUES ($1, $2) "
                    "ON CONFLICT (name) DO NOTHING",
                    name,
                    position,
                )
            return bool(status.endswith(" 1"))

    async def checkpoints(self) -> dict[str, int]:
        """Returns every command-side checkpoint by name."""
        rows = await self._fetch("SELECT name, position FROM command_checkpoints")
        return {str(name): int(pos) for name, pos in rows}

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        """Writes ``snapshot`` unless the stream has one of its schema at its version or above."""
        if self._pool is None:
            raise BackendError("event store is not started")
        with backend_errors("cannot save snapshot"):
            await self._pool.execute(
                "INSERT INTO snapshots (stream_id, schema, version, state) "
                "VALUES ($1, $2, $3, $4::jsonb) "
                "ON CONFLICT (stream_id) DO UPDATE SET schema = excluded.schema, "
                "version = excluded.version, state = excluded.state "
                "WHERE snapshots.schema <> excluded.schema OR snapshots.version < excluded.version",
                snapshot.stream_id,
                snapshot.schema,
                snapshot.version,
                orjson.dumps(snapshot.state).decode(),
            )

    async def load_snapshot(self, stream_id: str, schema: str) -> Snapshot | None:
        """Returns the stream's snapshot if it was taken with ``schema``, else None."""
        rows = await self._fetch(
            "SELECT version, state::text FROM snapshots WHERE stream_id = $1 AND schema = $2",
            stream_id,
            schema,
        )
        if not rows:
            return None
        return Snapshot(stream_id, schema, int(rows[0][0]), orjson.loads(rows[0][1]))

    def _envelope(self, row: Any) -> Envelope:
        return Envelope(
            row[0],
            row[1],
            self.service,
            row[2],
            row[3],
            row[4],
            row[5],
            orjson.loads(row[6]),
            orjson.loads(row[7]),
        )
