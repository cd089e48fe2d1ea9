"""PostgresReadStore: the read store port on PostgreSQL (asyncpg), a table per collection.

Each collection is a table ``(key text COLLATE "C" PRIMARY KEY, body jsonb)``; each declared
field gets an expression index on ``body -> 'field'``. A commit is ONE statement: a
compare-and-set of the checkpoint row, and the upserts and deletes of every collection it
touches, each guarded by that compare-and-set, so either all of it happens or nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import orjson

from bicameral.drivers.postgres import (
    SCHEMA_LOCK,
    PostgresUrl,
    backend_errors,
    connect,
    create_pool,
    migrate,
    quoted,
)
from bicameral.errors import BackendError
from bicameral.ports import Changes
from bicameral.readstore import checked_name

__all__ = ["SCHEMA", "PostgresReadStore"]

SCHEMA = [
    """
    CREATE TABLE IF NOT EXISTS projection_checkpoints (
        name text PRIMARY KEY, position bigint NOT NULL
    );
    CREATE TABLE IF NOT EXISTS leases (
        name text COLLATE "C" PRIMARY KEY, owner text NOT NULL, until timestamptz NOT NULL
    );
    """,
]
"""The read store's own tables, one entry per version; collections are made by ``declare``."""

_MAX_IDENT = 63


def _ident(prefix: str, name: str) -> str:
    """Returns ``prefix + name`` quoted, shortened with a hash past the 63-byte limit."""
    full = prefix + name
    if len(full.encode()) > _MAX_IDENT:
        digest = hashlib.sha1(full.encode()).hexdigest()[:12]
        full = full.encode()[: _MAX_IDENT - 13].decode(errors="ignore") + "_" + digest
    return quoted(full)


def _table(collection: str) -> str:
    return _ident("rm_", checked_name(collection))


def _commit_statement(upserts: Sequence[str], deletes: Sequence[str]) -> str:
    """Returns the one statement that moves the checkpoint and writes the given collections.

    Parameters: $1 name, $2 expected, $3 position, then per upsert collection keys and
    bodies (text[], text[]), then per delete collection keys (text[]).
    """
    parts = [
        "WITH cp AS (INSERT INTO projection_checkpoints AS c (name, position) "
        "SELECT $1, $3 WHERE $2 = 0 OR EXISTS "
        "(SELECT 1 FROM projection_checkpoints WHERE name = $1 AND position = $2) "
        "ON CONFLICT (name) DO UPDATE SET position = excluded.position "
        "WHERE c.position = $2 RETURNING 1)"
    ]
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
        """Closes the connections."""
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

    async def commit(self, checkpoint: str, expected: int, position: int, changes: Changes) -> bool:
        """Writes ``changes`` and moves the checkpoint in one statement, if at ``expected``."""
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
        args: list[Any] = [checkpoint, expected, position]
        for keys, bodies in puts.values():
            args += [keys, bodies]
        args += list(dels.values())
        with backend_errors("read store commit failed"):
            done = await self.pool.fetchval(_commit_statement(list(puts), list(dels)), *args)
        return bool(done)

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
