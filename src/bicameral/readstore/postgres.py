"""PostgresReadStore: the read store port on PostgreSQL (asyncpg), a table per collection.

Each collection is a table ``(key text COLLATE "C" PRIMARY KEY, body jsonb)``; each declared
field gets an expression index on ``body -> 'field'``. A commit is ONE statement: a
compare-and-set of the checkpoint row, and the upserts and deletes of every collection it
touches, each guarded by that compare-and-set, so either all of it happens or nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

from bicameral.commits import Commits
from bicameral.drivers.postgres import (
    SCHEMA_LOCK,
    PostgresUrl,
    backend_errors,
    connect,
    create_pool,
    migrate,
    quoted,
)
from bicameral.drivers.resources import schema_steps
from bicameral.errors import BackendError, DocumentError
from bicameral.parking import Failure, Park, ParkedSequence, Skipped, event_of, event_text
from bicameral.ports import Changes
from bicameral.readstore import checked_name
from bicameral.readstore.postgres_commits import postgres_watcher

__all__ = ["SCHEMA", "PostgresReadStore"]

SCHEMA = schema_steps("bicameral.readstore", "postgres.sql")
"""The read store's own tables (``postgres.sql``), one step per version; collections are made
by ``declare``."""

_MAX_IDENT = 63
_HEADER = (
    "id, service, consumer, key, error, message, traceback, attempts, first_failed, last_failed"
)
_FIELDS = _HEADER.split(", ")


class _Refused(Exception):
    """Rolls a transaction back: a park or settle did not match what is stored."""


@contextlib.contextmanager
def _documents() -> Iterator[None]:
    """Translates the server refusing a value (a data exception) into DocumentError."""
    try:
        yield
    except asyncpg.DataError as exc:
        raise DocumentError(f"the read store refused a document: {exc}") from exc


def _ident(prefix: str, name: str) -> str:
    """Returns ``prefix + name`` quoted, shortened with a hash past the 63-byte limit."""
    full = prefix + name
    if len(full.encode()) > _MAX_IDENT:
        digest = hashlib.sha1(full.encode()).hexdigest()[:12]
        full = full.encode()[: _MAX_IDENT - 13].decode(errors="ignore") + "_" + digest
    return quoted(full)


def _table(collection: str) -> str:
    return _ident("rm_", checked_name(collection))


def _commit_statement(upserts: Sequence[str], deletes: Sequence[str], guard: bool = True) -> str:
    """Returns the one statement that moves the checkpoint and writes the given collections.

    Parameters: $1 name, $2 expected, $3 position, then per upsert collection keys and
    bodies (text[], text[]), then per delete collection keys (text[]). Without ``guard``
    the checkpoint is left alone ($1 to $3 are unused) and the writes always happen.
    """
    if guard:
        parts = [
            "WITH cp AS (INSERT INTO projection_checkpoints AS c (name, position) "
            "SELECT $1, $3 WHERE $2 = 0 OR EXISTS "
            "(SELECT 1 FROM projection_checkpoints WHERE name = $1 AND position = $2) "
            "ON CONFLICT (name) DO UPDATE SET position = excluded.position "
            "WHERE c.position = $2 RETURNING 1)"
        ]
    else:
        parts = ["WITH cp AS (SELECT $1::text, $2::bigint, $3::bigint)"]
    n = 4
    for i, collection in enumerate(upserts):
        table = _table(collection)
        parts.append(
            f", u{i} AS (INSERT INTO {table} (key, body) "
            f"SELECT k, b::jsonb FROM unnest(${n}::text[], ${n + 1}::text[]) AS x(k, b) "
            "WHERE EXISTS (SELECT 1 FROM cp) "
            "ON CONFLICT (key) DO UPDATE SET body = excluded.body)"
        )
        n += 2
    for i, collection in enumerate(deletes):
        table = _table(collection)
        parts.append(
            f", d{i} AS (DELETE FROM {table} WHERE key = ANY(${n}::text[]) "
            "AND EXISTS (SELECT 1 FROM cp))"
        )
        n += 1
    parts.append(" SELECT count(*) FROM cp")
    return "".join(parts)


class PostgresReadStore:
    """Query-side documents of one or more services in one PostgreSQL database."""

    def __init__(self, url: str, *, pool_size: int = 8) -> None:
        self.url = PostgresUrl(url)
        self.pool_size = pool_size
        self._pool: Any = None
        self._declared: set[str] = set()
        self._commits = Commits(postgres_watcher(self.url), name=self.url.where)

    def commits(self) -> Commits:
        """Returns the notices of commits to the database, by any process (one ``LISTEN``
        connection while someone listens: see ``bicameral.readstore.postgres_commits``)."""
        return self._commits

    async def start(self) -> None:
        """Connects (creating the database if allowed) and creates its tables (idempotent)."""
        if self._pool is not None:
            return
        conn = await connect(self.url)
        try:
            await migrate(conn, "readstore", SCHEMA)
        finally:
            await conn.close()
        self._pool = await create_pool(self.url, max_size=self.pool_size)

    async def close(self) -> None:
        """Stops watching commits and closes the connections."""
        await self._commits.stop()
        pool, self._pool = self._pool, None
        if pool is not None:
            with backend_errors("closing the read store"):
                await pool.close()

    @property
    def pool(self) -> Any:
        """Returns the connection pool."""
        if self._pool is None:
            raise BackendError("read store is not started")
        return self._pool

    async def ping(self) -> None:
        """Returns once the server answered a query."""
        with backend_errors("read store unreachable"):
            await self.pool.fetchval("SELECT 1")

    async def _ensure(self, collection: str) -> str:
        table = _table(collection)
        if collection not in self._declared:
            await self._ddl(
                f'CREATE TABLE IF NOT EXISTS {table} (key text COLLATE "C" PRIMARY KEY, '
                "body jsonb NOT NULL)"
            )
            self._declared.add(collection)
        return table

    async def _ddl(self, statement: str) -> None:
        """Runs ``statement`` under the schema lock: concurrent IF NOT EXISTS can collide."""
        with backend_errors("cannot change the read store's tables"):
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK)
                await conn.execute(statement)

    async def declare(self, collection: str, indexes: Sequence[str] = ()) -> None:
        """Creates a collection's table and an expression index per field if missing."""
        table = await self._ensure(collection)
        for field in indexes:
            checked_name(field)
            index = _ident("ix_", f"{collection}_{field}")
            await self._ddl(f"CREATE INDEX IF NOT EXISTS {index} ON {table} ((body -> '{field}'))")

    async def _rows(self, query: str, *args: Any) -> list[Any]:
        with backend_errors("read store query failed"):
            return list(await self.pool.fetch(query, *args))

    async def get(self, collection: str, key: str) -> dict[str, Any] | None:
        """Returns one document, or None."""
        table = await self._ensure(collection)
        with backend_errors("read store query failed"):
            body = await self.pool.fetchval(f"SELECT body::text FROM {table} WHERE key = $1", key)
        return None if body is None else orjson.loads(body)

    async def get_many(self, collection: str, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Returns the documents found among ``keys``, in one query."""
        table = await self._ensure(collection)
        rows = await self._rows(
            f"SELECT key, body::text FROM {table} WHERE key = ANY($1::text[])", list(keys)
        )
        return {key: orjson.loads(body) for key, body in rows}

    async def find(
        self, collection: str, field: str, value: Any
    ) -> list[tuple[str, dict[str, Any]]]:
        """Returns ``(key, document)`` pairs whose indexed ``field`` equals ``value``, by key."""
        table = await self._ensure(collection)
        rows = await self._rows(
            f"SELECT key, body::text FROM {table} "
            f"WHERE body -> '{checked_name(field)}' = $1::jsonb ORDER BY key",
            orjson.dumps(value).decode(),
        )
        return [(key, orjson.loads(body)) for key, body in rows]

    async def all(self, collection: str) -> list[tuple[str, dict[str, Any]]]:
        """Returns every ``(key, document)`` pair of a collection, by key."""
        table = await self._ensure(collection)
        rows = await self._rows(f"SELECT key, body::text FROM {table} ORDER BY key")
        return [(key, orjson.loads(body)) for key, body in rows]

    async def commit(
        self,
        checkpoint: str,
        expected: int,
        position: int,
        changes: Changes,
        parked: Sequence[Park] = (),
    ) -> bool:
        """Writes ``changes`` and moves the checkpoint in one statement, if at ``expected``;
        with ``parked``, in one transaction with the parks."""
        statement, args = await self._changes_statement(changes)
        args[:0] = [checkpoint, expected, position]
        with backend_errors("read store commit failed"), _documents():
            if not parked:
                return bool(await self.pool.fetchval(statement, *args))
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    if not await conn.fetchval(statement, *args):
                        raise _Refused
                    await self._park(conn, parked)
            except _Refused:
                return False
        return True

    async def _changes_statement(
        self, changes: Changes, guard: bool = True
    ) -> tuple[str, list[Any]]:
        """Returns the statement writing ``changes`` and its arguments after the first three."""
        puts: dict[str, tuple[list[str], list[str]]] = {}
        dels: dict[str, list[str]] = {}
        dumps = orjson.dumps
        for (collection, key), doc in changes.items():
            if doc is None:
                dels.setdefault(collection, []).append(key)
            else:
                keys, bodies = puts.setdefault(collection, ([], []))
                keys.append(key)
                bodies.append(dumps(doc).decode())
        for collection in {*puts, *dels}:
            await self._ensure(collection)
        args: list[Any] = []
        for keys, bodies in puts.values():
            args += [keys, bodies]
        args += list(dels.values())
        return _commit_statement(list(puts), list(dels), guard), args

    async def _park(self, conn: Any, parked: Sequence[Park]) -> None:
        for park in parked:
            if park.failure is not None:
                header = park.header()
                sequence = await conn.fetchval(
                    f"INSERT INTO parked_sequences ({_HEADER}) "
                    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
                    "ON CONFLICT (consumer, key) DO NOTHING RETURNING id",
                    *[header[f] for f in _FIELDS[:8]],
                    park.failure.at,
                    park.failure.at,
                )
            else:
                sequence = await conn.fetchval(
                    "SELECT id FROM parked_sequences WHERE consumer = $1 AND key = $2 FOR UPDATE",
                    park.consumer,
                    park.key,
                )
            if sequence is None:
                raise _Refused
            await conn.execute(
                "INSERT INTO parked_events (sequence, position, event_id, body) "
                "VALUES ($1, $2, $3, $4)",
                sequence,
                park.envelope.position,
                park.envelope.id,
                event_text(park.envelope),
            )

    async def checkpoint(self, checkpoint: str) -> int:
        """Returns a checkpoint's position (0 if never committed)."""
        with backend_errors("read store query failed"):
            found = await self.pool.fetchval(
                "SELECT position FROM projection_checkpoints WHERE name = $1", checkpoint
            )
        return int(found or 0)

    async def checkpoints(self) -> dict[str, int]:
        """Returns every checkpoint by name."""
        rows = await self._rows("SELECT name, position FROM projection_checkpoints")
        return {str(name): int(pos) for name, pos in rows}

    async def drop(self, collections: Sequence[str], checkpoints: Sequence[str]) -> None:
        """Deletes collections and checkpoints, in one transaction."""
        with backend_errors("read store drop failed"):
            async with self.pool.acquire() as conn, conn.transaction():
                for collection in collections:
                    await conn.execute(f"DROP TABLE IF EXISTS {_table(collection)}")
                await conn.execute(
                    "DELETE FROM projection_checkpoints WHERE name = ANY($1::text[])",
                    list(checkpoints),
                )
        self._declared.difference_update(collections)

    async def parked_keys(self, consumer: str) -> set[str]:
        """Returns the keys of ``consumer`` with an open parked sequence."""
        rows = await self._rows("SELECT key FROM parked_sequences WHERE consumer = $1", consumer)
        return {str(key) for (key,) in rows}

    async def _sequences(self, where: str = "", *args: Any) -> list[ParkedSequence]:
        with backend_errors("read store query failed"):
            async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
                headers = await conn.fetch(f"SELECT {_HEADER} FROM parked_sequences {where}", *args)
                rows = await conn.fetch(
                    "SELECT sequence, body FROM parked_events "
                    "WHERE sequence = ANY($1::text[]) ORDER BY sequence, position",
                    [h["id"] for h in headers],
                )
        events: dict[str, list[Any]] = {}
        for row in rows:
            events.setdefault(row["sequence"], []).append(event_of(row["body"]))
        found = [ParkedSequence.of(dict(h), events.get(h["id"], [])) for h in headers]
        return sorted(found, key=lambda s: (s.first_failed, s.id))

    async def parked(self) -> list[ParkedSequence]:
        """Returns every parked sequence, by first failure time."""
        return await self._sequences()

    async def parked_sequence(self, sequence: str) -> ParkedSequence | None:
        """Returns one parked sequence, or None."""
        found = await self._sequences("WHERE id = $1", sequence)
        return found[0] if found else None

    async def unpark(
        self, sequence: str, event_id: str, changes: Changes, failure: Failure | None = None
    ) -> bool:
        """Settles the first event of a sequence, if it is ``event_id``, in one transaction."""
        statement, args = await self._changes_statement(changes, guard=False)
        try:
            with backend_errors("read store unpark failed"), _documents():
                async with self.pool.acquire() as conn, conn.transaction():
                    position = await self._head(conn, sequence, event_id)
                    if failure is not None:
                        await conn.execute(
                            "UPDATE parked_sequences SET attempts = attempts + $2, error = $3, "
                            "message = $4, traceback = $5, last_failed = $6 WHERE id = $1",
                            sequence,
                            failure.attempts,
                            failure.error,
                            failure.message,
                            failure.traceback,
                            failure.at,
                        )
                        return True
                    if changes:
                        await conn.fetchval(statement, "", 0, 0, *args)
                    await self._remove(conn, sequence, position)
        except _Refused:
            return False
        return True

    async def _head(self, conn: Any, sequence: str, event_id: str) -> int:
        """Locks a sequence and returns the position of its first event, if it is ``event_id``."""
        locked = await conn.fetchval(
            "SELECT 1 FROM parked_sequences WHERE id = $1 FOR UPDATE", sequence
        )
        head = await conn.fetchrow(
            "SELECT event_id, position FROM parked_events WHERE sequence = $1 "
            "ORDER BY position LIMIT 1",
            sequence,
        )
        if locked is None or head is None or head["event_id"] != event_id:
            raise _Refused
        return int(head["position"])

    async def _remove(self, conn: Any, sequence: str, position: int | None) -> None:
        """Removes one parked event (all when ``position`` is None) and an emptied sequence."""
        if position is None:
            await conn.execute("DELETE FROM parked_events WHERE sequence = $1", sequence)
        else:
            await conn.execute(
                "DELETE FROM parked_events WHERE sequence = $1 AND position = $2",
                sequence,
                position,
            )
        await conn.execute(
            "DELETE FROM parked_sequences WHERE id = $1 AND NOT EXISTS "
            "(SELECT 1 FROM parked_events WHERE sequence = $1)",
            sequence,
        )

    async def skip(self, sequence: str, reason: str, by: str) -> Skipped | None:
        """Removes a parked sequence and records the skip, in one transaction."""
        with backend_errors("read store skip failed"):
            async with self.pool.acquire() as conn, conn.transaction():
                locked = await conn.fetchval(
                    "SELECT 1 FROM parked_sequences WHERE id = $1 FOR UPDATE", sequence
                )
                if locked is None:
                    return None
                header = await conn.fetchrow(
                    f"SELECT {_HEADER} FROM parked_sequences WHERE id = $1", sequence
                )
                rows = await conn.fetch(
                    "SELECT body FROM parked_events WHERE sequence = $1 ORDER BY position",
                    sequence,
                )
                found = ParkedSequence.of(dict(header), [event_of(r["body"]) for r in rows])
                record = Skipped.of(found, reason, by, datetime.now(UTC))
                await self._remove(conn, sequence, None)
                await conn.execute(
                    "INSERT INTO parked_skips (body) VALUES ($1)",
                    orjson.dumps(record.to_dict()).decode(),
                )
        return record

    async def skipped(self) -> list[Skipped]:
        """Returns the skip records, oldest first."""
        rows = await self._rows("SELECT body FROM parked_skips ORDER BY n")
        return [Skipped.from_dict(orjson.loads(body)) for (body,) in rows]

    async def acquire_lease(self, name: str, owner: str, ttl: float) -> bool:
        """Takes or renews a lease unless another owner holds it unexpired (server clock)."""
        with backend_errors("lease update failed"):
            taken = await self.pool.fetchval(
                "INSERT INTO leases AS l (name, owner, until) "
                "VALUES ($1, $2, clock_timestamp() + make_interval(secs => $3)) "
                "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until "
                "WHERE l.owner = excluded.owner OR l.until <= clock_timestamp() RETURNING 1",
                name,
                owner,
                float(ttl),
            )
        return taken is not None

    async def release_lease(self, name: str, owner: str) -> None:
        """Gives up a lease held by ``owner``."""
        with backend_errors("lease release failed"):
            await self.pool.execute(
                "DELETE FROM leases WHERE name = $1 AND owner = $2", name, owner
            )

    async def leases(self, prefix: str) -> dict[str, str]:
        """Returns unexpired leases whose names start with ``prefix``: name -> owner."""
        rows = await self._rows(
            "SELECT name, owner FROM leases WHERE starts_with(name, $1) "
            "AND until > clock_timestamp()",
            prefix,
        )
        return {str(n): str(o) for n, o in rows}
