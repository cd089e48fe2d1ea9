"""Ceilings: the raw speed of each backend, measured by the harness with the bare driver."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from typing import Any
from urllib.parse import urlsplit

from bench.drive import run_clients
from bench.registry import Unavailable, bench
from bench.resources import NATS_URL, REDIS_URL

ROW = "x" * 200
"""A payload about the size of an event's data and metadata."""


def _sqlite(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, k TEXT, body BLOB)")
    return conn


@bench("ceiling.sqlite.insert")
async def sqlite_insert(p: dict[str, Any]) -> dict[str, float]:
    """INSERT transactions of ``rows`` rows each into SQLite (WAL, synchronous=FULL)."""
    conn = _sqlite(os.path.join(p["tmp"], "ceiling.db"))
    rows = int(p.get("rows", 1))
    n = 0

    async def op(c: int, i: int) -> None:
        nonlocal n
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO t (k, body) VALUES (?, ?)", [(f"k{n + j}", ROW) for j in range(rows)]
        )
        conn.execute("COMMIT")
        n += rows

    out = await run_clients(1, op, p["seconds"], per_op=rows)
    conn.close()
    return out


async def _pg(url: str) -> Any:
    try:
        import asyncpg
    except ImportError as exc:
        raise Unavailable(f"asyncpg missing ({exc})") from None
    try:
        return await asyncpg.connect(url, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        raise Unavailable(f"PostgreSQL unreachable at {url} ({exc})") from None


_PG_TABLE = (
    "CREATE TABLE IF NOT EXISTS t (id BIGSERIAL PRIMARY KEY, k TEXT NOT NULL, body TEXT NOT NULL)"
)


@bench("ceiling.pg.insert")
async def pg_insert(p: dict[str, Any]) -> dict[str, float]:
    """One-row INSERT transactions into PostgreSQL from ``clients`` connections (as pgbench)."""
    import asyncpg

    conn = await _pg(p["pg_url"])
    await conn.execute(_PG_TABLE)
    await conn.close()
    clients = int(p["clients"])
    pool = await asyncpg.create_pool(p["pg_url"], min_size=clients, max_size=clients)
    conns = [await pool.acquire() for _ in range(clients)]

    async def op(c: int, i: int) -> None:
        await conns[c].execute("INSERT INTO t (k, body) VALUES ($1, $2)", f"{c}-{i}", ROW)

    out = await run_clients(clients, op, p["seconds"])
    for conn in conns:
        await pool.release(conn)
    await pool.close()
    return out


@bench("ceiling.pg.insert_batch")
async def pg_insert_batch(p: dict[str, Any]) -> dict[str, float]:
    """INSERT transactions of 100 rows each into PostgreSQL, one connection; rows/s."""
    conn = await _pg(p["pg_url"])
    await conn.execute(_PG_TABLE)
    rows = int(p.get("rows", 100))

    async def op(c: int, i: int) -> None:
        async with conn.transaction():
            await conn.executemany(
                "INSERT INTO t (k, body) VALUES ($1, $2)",
                [(f"{i}-{j}", ROW) for j in range(rows)],
            )

    out = await run_clients(1, op, p["seconds"], per_op=rows)
    await conn.close()
    return out


@bench("ceiling.pg.copy")
async def pg_copy(p: dict[str, Any]) -> dict[str, float]:
    """COPY of 10,000-row batches into PostgreSQL, one connection; rows/s."""
    conn = await _pg(p["pg_url"])
    await conn.execute(_PG_TABLE)
    rows = 10_000

    async def op(c: int, i: int) -> None:
        await conn.copy_records_to_table(
            "t", records=[(f"{i}-{j}", ROW) for j in range(rows)], columns=["k", "body"]
        )

    out = await run_clients(1, op, p["seconds"], per_op=rows)
    await conn.close()
    return out


def _resp_set(key: bytes, value: bytes) -> bytes:
    return b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (
        len(key),
        key,
        len(value),
        value,
    )


@bench("ceiling.redis.pipeline")
async def redis_pipeline(p: dict[str, Any]) -> dict[str, float]:
    """Pipelined SETs, 1,000 a batch, in raw RESP on one connection (no client library); ops/s.

    This is the server's ceiling as redis-benchmark -P would see it; a Python client library
    adds its own cost on top, which counts against the read store, not the ceiling.
    """
    host, port = urlsplit(REDIS_URL).hostname or "127.0.0.1", urlsplit(REDIS_URL).port or 6379
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError as exc:
        raise Unavailable(f"Redis unreachable at {REDIS_URL} ({exc})") from None
    prefix = f"bench:{p['uid']}:".encode()
    size = 1000
    value = ROW.encode()

    async def op(c: int, i: int) -> None:
        writer.write(b"".join(_resp_set(prefix + b"%d" % j, value) for j in range(size)))
        reply = await reader.readexactly(5 * size)
        if reply.count(b"+OK\r\n") != size:
            raise RuntimeError(f"unexpected Redis reply {reply[:80]!r}")

    try:
        return await run_clients(1, op, p["seconds"], per_op=size)
    finally:
        writer.close()


@bench("ceiling.nats.publish")
async def nats_publish(p: dict[str, Any]) -> dict[str, float]:
    """JetStream publishes, each awaited for its ack, 256 in flight, one connection; msgs/s."""
    try:
        import nats
    except ImportError as exc:
        raise Unavailable(f"nats-py missing ({exc})") from None
    try:
        nc = await nats.connect(NATS_URL, connect_timeout=2, max_reconnect_attempts=0)
    except Exception as exc:
        raise Unavailable(f"NATS unreachable at {NATS_URL} ({exc})") from None
    js = nc.jetstream()
    stream = f"BENCH_{p['uid']}"
    subject = f"bench.{p['uid']}"
    await js.add_stream(name=stream, subjects=[subject])
    window = 256
    payload = ROW.encode()
    n = 0

    async def op(c: int, i: int) -> None:
        nonlocal n
        futs = []
        for _ in range(window):
            n += 1
            futs.append(js.publish(subject, payload, headers={"Nats-Msg-Id": f"{stream}-{n}"}))
        await asyncio.gather(*futs)

    try:
        return await run_clients(1, op, p["seconds"], per_op=window)
    finally:
        await js.delete_stream(stream)
        await nc.close()
