"""The position guarantee of the PostgreSQL event store under concurrent writer processes.

Writer processes append at once through the store (group commit, with conflicts), through
their own transactions that commit slowly, sit idle, or roll back, and through victim
transactions that the test kills with ``pg_terminate_backend`` while they hold the counter.
Tailing reader processes record everything they see. Every reader must have seen the final
log exactly: every committed event once, in position order, without gaps, and nothing that
was rolled back, conflicted or killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import queue
import random
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from bicameral.envelope import NewEvent
from bicameral.errors import ConcurrencyError
from bicameral.ports import StreamAppend
from bicameral.testing import require_server

pytestmark = pytest.mark.postgres

WRITERS = 3
READERS = 2
SECONDS = 4.0
VICTIM = "bicameral-victim"


@pytest.fixture
def url() -> Iterator[str]:
    """Returns the URL of an empty database with the event store's schema, dropped after."""
    require_server("postgresql")
    from bicameral.testing.postgres import temporary_database

    with temporary_database("bicameral_pos") as made:
        yield made


def _new(n: int, tag: str) -> list[NewEvent]:
    return [NewEvent("test.Happened.v1", {"n": i, "tag": tag}) for i in range(n)]


async def _write(url: str, seed: int, seconds: float) -> dict[str, list[str]]:
    import asyncpg

    from bicameral.drivers.postgres import PostgresUrl, connect
    from bicameral.eventstore.postgres import AppendJob, PostgresEventStore, append_batch

    rng = random.Random(seed)
    out: dict[str, list[str]] = {"committed": [], "discarded": [], "killed": []}
    store = PostgresEventStore("svc", url, pool_size=1)
    await store.start()
    stop = time.monotonic() + seconds

    async def through_store(task: int) -> None:
        while time.monotonic() < stop:
            stream = f"hot-{rng.randrange(3)}"
            version = await store.stream_version(stream)
            new = _new(rng.randint(1, 3), f"store-{seed}-{task}")
            ids = [e.id for e in new]
            try:
                await store.append([StreamAppend(stream, version, new)])
            except ConcurrencyError:
                out["discarded"] += ids
            else:
                out["committed"] += ids

    async def own_transactions(task: int) -> None:
        conn = await connect(PostgresUrl(url))
        n = 0
        while time.monotonic() < stop:
            n += 1
            new = _new(rng.randint(1, 4), f"raw-{seed}")
            job = AppendJob(
                [StreamAppend(f"raw-{seed}-{task}-{n}", 0, new)], None, "", datetime.now(UTC)
            )
            kind = rng.choice(["slow", "idle", "rollback", "quick"])
            tx = conn.transaction()
            await tx.start()
            await append_batch(conn, "svc", [job])
            assert not isinstance(job.outcome, BaseException), job.outcome
            if kind == "slow":
                await conn.execute("SELECT pg_sleep($1)", rng.uniform(0.0, 0.04))
            elif kind == "idle":
                await asyncio.sleep(rng.uniform(0.0, 0.04))
            if kind == "rollback":
                await tx.rollback()
                out["discarded"] += [e.id for e in new]
            else:
                await tx.commit()
                out["committed"] += [e.id for e in new]
        await conn.close()

    async def victim() -> None:
        while time.monotonic() < stop:
            conn = await connect(PostgresUrl(url), server_settings={"application_name": VICTIM})
            new = _new(2, f"victim-{seed}")
            job = AppendJob(
                [StreamAppend(f"victim-{seed}", None, new)], None, "", datetime.now(UTC)
            )
            try:
                async with conn.transaction():
                    await append_batch(conn, "svc", [job])
                    await conn.execute("SELECT pg_sleep(2)")
                    raise RuntimeError("not killed in time; roll back")
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                out["killed"] += [e.id for e in new]
            except RuntimeError:
                out["discarded"] += [e.id for e in new]
            finally:
                with contextlib.suppress(Exception):
                    conn.terminate()
            await asyncio.sleep(rng.uniform(0.0, 0.2))

    try:
        await asyncio.gather(
            *(through_store(i) for i in range(6)),
            own_transactions(0),
            own_transactions(1),
            victim(),
        )
    finally:
        await store.close()
    return out


def _report(results: Any, kind: str, work: Any) -> None:
    try:
        results.put((kind, asyncio.run(work)))
    except BaseException as exc:
        results.put(("error", f"{kind}: {type(exc).__name__}: {exc}"))
        raise


def _writer(url: str, seed: int, seconds: float, results: Any) -> None:
    _report(results, "writer", _write(url, seed, seconds))


async def _tail(url: str, done: Any, final: Any) -> list[tuple[int, str]]:
    from bicameral.eventstore.postgres import PostgresEventStore

    store = PostgresEventStore("svc", url, pool_size=1)
    await store.start()
    seen: list[tuple[int, str]] = []
    last = 0
    try:
        while True:
            batch = await store.read_all(last, limit=rng_limit(len(seen)))
            seen += [(e.position, e.id) for e in batch]
            if batch:
                last = batch[-1].position
            elif done.is_set() and last >= final.value:
                return seen
            else:
                await store.wait_for(last, 0.2)
    finally:
        await store.close()


def rng_limit(n: int) -> int:
    """Returns a page size that varies as the reader goes, so pages end anywhere."""
    return 1 + (n * 7919) % 97


def _reader(url: str, done: Any, final: Any, results: Any) -> None:
    _report(results, "reader", _tail(url, done, final))


async def _prepare(url: str) -> None:
    from bicameral.eventstore.postgres import PostgresEventStore

    store = PostgresEventStore("svc", url)
    await store.start()
    await store.close()


async def _kill_victims(url: str, writing: Callable[[], bool]) -> int:
    """Terminates victim connections in the middle of their transactions while ``writing()``."""
    import asyncpg

    conn = await asyncpg.connect(url)
    killed = 0
    try:
        while writing():
            killed += await conn.fetchval(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = $1 AND datname = current_database() "
                "AND xact_start < clock_timestamp() - interval '30 milliseconds'",
                VICTIM,
            )
            await asyncio.sleep(0.05)
    finally:
        await conn.close()
    return int(killed)


async def _log(url: str) -> list[tuple[int, str]]:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT position, id FROM events ORDER BY position")
    finally:
        await conn.close()
    return [(int(p), str(i)) for p, i in rows]


@pytest.mark.parametrize("round_", range(3))
def test_readers_see_every_committed_event_once_in_order_under_concurrent_writers(
    url: str, round_: int
) -> None:
    asyncio.run(_prepare(url))
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    done = ctx.Event()
    final = ctx.Value("q", 0)
    readers = [
        ctx.Process(target=_reader, args=(url, done, final, results)) for _ in range(READERS)
    ]
    writers = [
        ctx.Process(target=_writer, args=(url, 100 * round_ + i, SECONDS, results))
        for i in range(WRITERS)
    ]
    outcomes: dict[str, list[Any]] = {"writer": [], "reader": [], "error": []}

    def writing() -> bool:
        # Drain results as they come: a process cannot exit before its queue is read.
        with contextlib.suppress(queue.Empty):
            while True:
                kind, payload = results.get_nowait()
                outcomes[kind].append(payload)
        return len(outcomes["writer"]) + len(outcomes["error"]) < WRITERS

    for p in readers + writers:
        p.start()
    try:
        killed = asyncio.run(_kill_victims(url, writing))
        log = asyncio.run(_log(url))
        final.value = log[-1][0] if log else 0
        done.set()
        while len(outcomes["reader"]) + len(outcomes["error"]) < READERS + (
            WRITERS - len(outcomes["writer"])
        ):
            kind, payload = results.get(timeout=60)
            outcomes[kind].append(payload)
        assert not outcomes["error"], outcomes["error"]
    finally:
        for p in readers + writers:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()

    committed = {i for w in outcomes["writer"] for i in w["committed"]}
    lost = {i for w in outcomes["writer"] for i in w["discarded"] + w["killed"]}
    assert killed > 0, "no victim transaction was killed mid-way"
    assert sum(len(w["killed"]) for w in outcomes["writer"]) > 0
    assert lost, "no append was rolled back or conflicted"
    assert [p for p, _ in log] == list(range(1, len(log) + 1)), "the log has gaps"
    assert {i for _, i in log} == committed
    assert not lost & committed
    assert len(outcomes["reader"]) == READERS
    for seen in outcomes["reader"]:
        assert seen == log
