"""Writer lanes: whatever one batch throws fails that batch only, and the writer goes on.

Driven without a server: the PostgreSQL lane gets a stand-in connection, the SQLite writer an
in-memory database.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bicameral.drivers.postgres import PostgresUrl
from bicameral.drivers.sqlite import Writer
from bicameral.envelope import NewEvent
from bicameral.errors import BackendError
from bicameral.eventstore.postgres import AppendJob, _Lane
from bicameral.ports import AppendResult, StreamAppend


class OneRowConnection:
    """Answers every ``bicameral_append`` call as if each job wrote one event to a new stream."""

    def __init__(self) -> None:
        self.calls = 0
        self.terminated = False

    def is_closed(self) -> bool:
        return self.terminated

    def terminate(self) -> None:
        self.terminated = True

    async def fetchrow(self, query: str, *args: Any) -> tuple[list[Any], ...]:
        self.calls += 1
        n = len(args[2])
        positions = list(range(1, n + 1))
        return (["w"] * n, positions, [None] * n, [None] * n, [None] * n, [None] * n,
                positions, [1] * n)  # fmt: skip


def job(data: dict[str, Any], stream: str) -> AppendJob:
    future: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
    appends = [StreamAppend(stream, 0, [NewEvent("test.Happened.v1", data)])]
    return AppendJob(appends, None, "", datetime.now(UTC), future)


async def test_a_postgres_lane_fails_only_the_batch_that_raised_and_goes_on() -> None:
    queue: asyncio.Queue[AppendJob | None] = asyncio.Queue()
    commits: list[int] = []
    lane = _Lane(
        PostgresUrl("postgresql://x@127.0.0.1:1/db"), "svc", queue, lambda: commits.append(1)
    )
    conn = OneRowConnection()
    lane.conn = conn
    # One batch: a good append and one whose data no JSON encoder takes (a bug, not a driver
    # error): encoding raises TypeError before anything reaches the database.
    bad_batch = [job({"n": 1}, "a"), job({"n": object()}, "b")]
    for queued in bad_batch:
        queue.put_nowait(queued)
    running = asyncio.create_task(lane.run())
    for failed in bad_batch:
        assert failed.future is not None
        with pytest.raises(BackendError, match="TypeError"):
            await asyncio.wait_for(failed.future, 5.0)
    lane.conn = conn = OneRowConnection()  # the lane dropped its connection; give a new one
    later = job({"n": 2}, "c")
    queue.put_nowait(later)
    assert later.future is not None
    result = await asyncio.wait_for(later.future, 5.0)
    assert result.versions == {"c": 1}
    assert conn.calls == 1
    queue.put_nowait(None)
    await asyncio.wait_for(running, 5.0)
    assert len(commits) == 2


async def test_a_sqlite_writer_survives_a_caller_whose_loop_is_gone() -> None:
    writer = Writer(sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None),
                     max_batch=10, max_queue=10)  # fmt: skip
    writer.start()
    try:
        gone = asyncio.new_event_loop()
        orphan = gone.create_future()
        gone.close()  # answering this caller raises RuntimeError in the writer thread
        writer.jobs.put((lambda conn: 1, gone, orphan))
        loop = asyncio.get_running_loop()
        answered: asyncio.Future[Any] = loop.create_future()
        writer.jobs.put((lambda conn: conn.execute("SELECT 7").fetchone()[0], loop, answered))
        assert await asyncio.wait_for(answered, 5.0) == 7
        assert writer.is_alive()
    finally:
        await asyncio.to_thread(writer.jobs.put, None)
        await asyncio.to_thread(writer.join)


def _failing_insert(conn: sqlite3.Connection) -> None:
    conn.execute("INSERT INTO t VALUES (1)")
    raise ValueError("refused after writing")


async def test_a_sqlite_job_that_raises_leaves_nothing_written_alone_or_in_a_batch() -> None:
    conn = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
    conn.execute("CREATE TABLE t (n INTEGER)")
    writer = Writer(conn, max_batch=10, max_queue=10)
    loop = asyncio.get_running_loop()

    def insert(n: int) -> Any:
        return lambda conn: conn.execute("INSERT INTO t VALUES (?)", (n,)).rowcount

    lone = loop.create_future()
    await asyncio.to_thread(writer._commit, [(_failing_insert, loop, lone)])
    with pytest.raises(ValueError, match="refused"):
        await asyncio.wait_for(lone, 5.0)
    batch = [(insert(2), loop, loop.create_future()), (_failing_insert, loop, loop.create_future()),
             (insert(3), loop, loop.create_future())]  # fmt: skip
    await asyncio.to_thread(writer._commit, batch)
    assert await asyncio.wait_for(batch[0][2], 5.0) == 1
    with pytest.raises(ValueError, match="refused"):
        await asyncio.wait_for(batch[1][2], 5.0)
    assert await asyncio.wait_for(batch[2][2], 5.0) == 1
    assert not conn.in_transaction
    assert [n for (n,) in conn.execute("SELECT n FROM t ORDER BY n")] == [2, 3]
    conn.close()


@given(st.lists(st.booleans(), min_size=1, max_size=8))
def test_a_sqlite_batch_keeps_exactly_the_writes_of_the_jobs_that_did_not_raise(
    fails: list[bool],
) -> None:
    """Alone or many to a transaction, each job's outcome is its own."""
    conn = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
    conn.execute("CREATE TABLE t (n INTEGER)")
    writer = Writer(conn, max_batch=10, max_queue=10)
    loop = asyncio.new_event_loop()
    try:

        def job(n: int) -> Any:
            def run(conn: sqlite3.Connection) -> int:
                conn.execute("INSERT INTO t VALUES (?)", (n,))
                if fails[n]:
                    raise ValueError(f"job {n} refused")
                return n

            return run

        batch = [(job(n), loop, loop.create_future()) for n in range(len(fails))]
        writer._commit(batch)
        outcomes = loop.run_until_complete(
            asyncio.gather(*(f for _, _, f in batch), return_exceptions=True)
        )
        for n, outcome in enumerate(outcomes):
            assert isinstance(outcome, ValueError) if fails[n] else outcome == n
        kept = [n for (n,) in conn.execute("SELECT n FROM t ORDER BY n")]
        assert kept == [n for n, failed in enumerate(fails) if not failed]
        assert not conn.in_transaction
    finally:
        loop.close()
        conn.close()
