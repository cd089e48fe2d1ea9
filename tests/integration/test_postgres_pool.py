"""The PostgreSQL adapters' pools (``bicameral.drivers.postgres.create_pool``): a released
connection costs no reset round trip, and still leaves no transaction open."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bicameral.drivers.postgres import PostgresUrl, create_pool
from bicameral.testing import require_server

pytestmark = pytest.mark.postgres


@pytest.fixture
def url() -> Iterator[str]:
    """Returns the URL of an empty database of its own, dropped after."""
    require_server("postgresql")
    from bicameral.testing.postgres import temporary_database

    with temporary_database("bicameral_pool") as made:
        yield made


async def test_a_query_through_the_pool_is_one_round_trip(url: str) -> None:
    pool = await create_pool(PostgresUrl(url), max_size=1)
    try:
        async with pool.acquire() as conn:
            raw = conn._con  # the connection behind the pool's proxy
        before = raw._protocol.queries_count
        assert await pool.fetchval("SELECT 1") == 1
        assert raw._protocol.queries_count == before + 1, "no reset query on release"
    finally:
        await pool.close()


async def test_a_transaction_left_open_is_rolled_back_on_release(url: str) -> None:
    pool = await create_pool(PostgresUrl(url), max_size=1)
    try:
        await pool.execute("CREATE TABLE t (n int)")
        conn = await pool.acquire()
        await conn.execute("BEGIN")
        await conn.execute("INSERT INTO t VALUES (1)")
        await pool.release(conn)  # asyncpg reports the open transaction to the loop
        async with pool.acquire() as again:
            assert not again.is_in_transaction()
            assert await again.fetchval("SELECT count(*) FROM t") == 0
    finally:
        await pool.close()
