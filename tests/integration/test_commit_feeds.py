"""Each read store's change feed: a commit through another connection, as another process
makes it, wakes this process's listeners (SQLite, PostgreSQL, Redis)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from bicameral.commits import EVERYTHING
from bicameral.ports import ReadStore
from bicameral.readstore.postgres import PostgresReadStore
from bicameral.readstore.redis import RedisReadStore
from bicameral.readstore.sqlite import SqliteReadStore
from bicameral.testing import CommitFeedContract, require_server

REDIS = "redis://127.0.0.1:6379/0"


class TestSqliteCommitFeed(CommitFeedContract):
    @pytest.fixture(autouse=True)
    def _path(self, tmp_path: Path) -> None:
        self.path = str(tmp_path / "reads.db")

    async def make_store(self) -> ReadStore:
        return SqliteReadStore(self.path)

    async def make_other(self, store: ReadStore) -> ReadStore:
        return SqliteReadStore(self.path)


@pytest.mark.postgres
class TestPostgresCommitFeed(CommitFeedContract):
    @pytest.fixture(autouse=True)
    def _database(self) -> Iterator[None]:
        require_server("postgresql")
        from bicameral.testing.postgres import temporary_database

        with temporary_database("bicameral_cf") as url:
            self.url = url
            yield

    async def make_store(self) -> ReadStore:
        return PostgresReadStore(self.url)

    async def make_other(self, store: ReadStore) -> ReadStore:
        return PostgresReadStore(self.url)


class TestRedisCommitFeed(CommitFeedContract):
    @pytest.fixture(autouse=True)
    async def _prefix(self) -> AsyncIterator[None]:
        require_server("redis")
        self.prefix = f"t_{uuid.uuid4().hex}"
        yield
        client = aioredis.Redis.from_url(REDIS)
        try:
            doomed = [key async for key in client.scan_iter(match=f"{self.prefix}:*")]
            if doomed:
                await client.delete(*doomed)
        finally:
            await client.aclose()

    async def make_store(self) -> ReadStore:
        return RedisReadStore(f"{REDIS}?prefix={self.prefix}")

    async def make_other(self, store: ReadStore) -> ReadStore:
        return RedisReadStore(f"{REDIS}?prefix={self.prefix}")


@pytest.fixture
def pg_url() -> Iterator[str]:
    require_server("postgresql")
    from bicameral.testing.postgres import temporary_database

    with temporary_database("bicameral_cf") as url:
        yield url


@pytest.mark.postgres
async def test_a_lost_postgres_listener_comes_back_and_says_everything_moved(
    pg_url: str,
) -> None:
    store = PostgresReadStore(pg_url)
    await store.start()
    try:
        commits = store.commits()
        async with commits.listen() as listener:
            await commits.ready(10)
            conn = await asyncpg.connect(pg_url)
            try:
                killed = await conn.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND query LIKE 'LISTEN%'"
                )
            finally:
                await conn.close()
            assert killed == 1
            assert EVERYTHING in await asyncio.wait_for(listener.next(), 30)
            await commits.ready(10)
            await store.declare("proj_v1_items")
            assert await store.commit("proj.v1:svc", 0, 1, {})
            names: set[str] = set()
            while "proj.v1:svc" not in names:
                names |= await asyncio.wait_for(listener.next(), 10)
    finally:
        await store.close()
