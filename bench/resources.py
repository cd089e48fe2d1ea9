"""Per-run resources with unique names (PG databases, Redis keys, NATS streams), cleaned up.

Every run gets a fresh ``uid``; benchmarks put it in every name they create (database, key
prefix, stream, projection), and ``release`` removes whatever carries it.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import tempfile
import uuid
from dataclasses import dataclass
from typing import Any

__all__ = ["NATS_URL", "PG_ADMIN_URL", "PG_HOST", "REDIS_URL", "RunResources", "free_port"]

PG_HOST = "127.0.0.1"
PG_ADMIN_URL = f"postgresql://postgres@{PG_HOST}:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"
NATS_URL = "nats://127.0.0.1:4222"


def free_port() -> int:
    """Returns a TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunResources:
    """The names one run may use, and what to remove afterwards."""

    uid: str
    tmp: str
    pg_db: str | None = None

    @classmethod
    async def acquire(cls, needs: tuple[str, ...]) -> RunResources:
        """Returns fresh resources; creates a database when ``needs`` has ``pg``."""
        uid = uuid.uuid4().hex[:10]
        res = cls(uid=uid, tmp=tempfile.mkdtemp(prefix=f"bicameral-bench-{uid}-"))
        if "pg" in needs:
            res.pg_db = f"bench_{uid}"
            with contextlib.suppress(Exception):
                await _pg_admin(f'CREATE DATABASE "{res.pg_db}"')
        return res

    def params(self) -> dict[str, Any]:
        """Returns the parameters a benchmark gets to name its resources."""
        out: dict[str, Any] = {"uid": self.uid, "tmp": self.tmp}
        if self.pg_db is not None:
            out["pg_url"] = f"postgresql://postgres@{PG_HOST}:5432/{self.pg_db}"
        return out

    async def release(self, needs: tuple[str, ...]) -> None:
        """Removes the run's database, keys, streams and files."""
        shutil.rmtree(self.tmp, ignore_errors=True)
        if self.pg_db is not None:
            with contextlib.suppress(Exception):
                await _pg_drop_all(self.pg_db)
        if "redis" in needs:
            with contextlib.suppress(Exception):
                await _redis_clean(self.uid)
        if "nats" in needs:
            with contextlib.suppress(Exception):
                await _nats_clean(self.uid)


async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _pg_drop_all(name: str) -> None:
    """Drops database ``name`` and those a server made for the run (``<name>_<service>``)."""
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    try:
        found = await conn.fetch(
            "SELECT datname FROM pg_database WHERE datname = $1 OR datname LIKE $2",
            name,
            name.replace("_", r"\_") + r"\_%",
        )
        for row in found:
            await conn.execute(f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)')
    finally:
        await conn.close()


async def _redis_clean(uid: str) -> None:
    import redis.asyncio as redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        batch: list[Any] = []
        async for key in client.scan_iter(match=f"*{uid}*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                await client.delete(*batch)
                batch.clear()
        if batch:
            await client.delete(*batch)
    finally:
        await client.aclose()


async def _nats_clean(uid: str) -> None:
    import nats

    nc = await nats.connect(NATS_URL, connect_timeout=2, max_reconnect_attempts=0)
    try:
        js = nc.jetstream()
        for info in await js.streams_info():
            name = info.config.name or ""
            if uid.lower() in name.lower():
                await js.delete_stream(name)
    finally:
        await nc.close()


def run_sync(coro: Any) -> Any:
    """Runs a coroutine from synchronous harness code."""
    return asyncio.run(coro)
