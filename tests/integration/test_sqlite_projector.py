"""Projectors on the SQLite event and read stores: racing, restarting, exactly once."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from bicameral import Envelope, Event, Projection, Projector, View
from bicameral.envelope import NewEvent
from bicameral.eventstore.sqlite import SqliteEventStore
from bicameral.ports import StreamAppend
from bicameral.readstore.sqlite import SqliteReadStore
from bicameral.workers.feeds import LogFeed
from tests.unit.tally import Added, Removed, fold_once, read_model, tally

CHECKPOINT = tally.checkpoint("tally")


def history(n: int, seed: int) -> list[Event]:
    rng = random.Random(seed)
    return [
        Removed(key=rng.choice("abcdef"))
        if rng.random() < 0.1
        else Added(key=rng.choice("abcdef"), n=rng.randint(-9, 9))
        for _ in range(n)
    ]


async def write(store: SqliteEventStore, events: list[Event]) -> None:
    await asyncio.gather(
        *(
            store.append([StreamAppend(f"tally-{i}", None, [NewEvent.of(e)])])
            for i, e in enumerate(events)
        )
    )


async def test_racing_projectors_on_one_sqlite_read_store_apply_each_event_once(
    tmp_path: Path,
) -> None:
    events = SqliteEventStore("tally", str(tmp_path / "events.db"))
    await events.start()
    readers = [SqliteReadStore(str(tmp_path / "reads.db")) for _ in range(3)]
    for reader in readers:
        await reader.start()
    try:
        stop = asyncio.Event()
        projectors = [
            Projector(tally, LogFeed("tally", events), reader, batch_size=7) for reader in readers
        ]
        running = [asyncio.create_task(p.run(stop)) for p in projectors]
        for seed in range(4):
            await write(events, history(60, seed))
        head = await events.head()
        for _ in range(500):
            if await readers[0].checkpoint(CHECKPOINT) == head:
                break
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*running), 10.0)
        log = await events.read_all(0, head + 1)
        expected = await read_model(await fold_once(log))
        for reader in readers:
            model = await read_model(reader)
            assert model == expected
            positions = dict(model["journal"])["all"]["positions"]
            assert positions == [e.position for e in log if e.type != "tally.Noted.v1"]
    finally:
        for reader in readers:
            await reader.close()
        await events.close()


async def test_a_projector_restarted_on_the_same_files_resumes_after_its_checkpoint(
    tmp_path: Path,
) -> None:
    events = SqliteEventStore("tally", str(tmp_path / "events.db"))
    await events.start()
    try:
        await write(events, history(50, 1))
        for rounds in range(3):
            reads = SqliteReadStore(str(tmp_path / "reads.db"))
            await reads.start()
            projector = Projector(tally, LogFeed("tally", events), reads, batch_size=9)
            await projector.prepare()
            for _ in range(2):
                await projector.step(timeout=0.0)
            await reads.close()
            await write(events, history(10, 10 + rounds))
        reads = SqliteReadStore(str(tmp_path / "reads.db"))
        await reads.start()
        await Projector(tally, LogFeed("tally", events), reads).catch_up()
        log = await events.read_all(0, 10_000)
        assert await read_model(reads) == await read_model(await fold_once(log))
        await reads.close()
    finally:
        await events.close()


class Deposited(Event, name="bank.Deposited"):
    cents: int


balances = Projection("balances", collections={"balances": []}, retries=1)


@balances.on(Deposited)
async def deposited(event: Deposited, view: View, env: Envelope) -> None:
    doc = await view.get("balances", env.subject) or {"cents": 0}
    view.put("balances", env.subject, {"cents": doc["cents"] + event.cents})


async def test_a_balance_past_64_bits_parks_its_deposit_and_the_others_go_on(
    tmp_path: Path,
) -> None:
    """The issue's case: 18446744073709551615 cents, then 1: that customer waits, nobody else."""
    events = SqliteEventStore("bank", str(tmp_path / "events.db"))
    reads = SqliteReadStore(str(tmp_path / "reads.db"))
    await events.start()
    await reads.start()
    try:
        for stream, cents in [("ann", 5), ("bob", 2**64 - 1), ("bob", 1), ("ann", 6), ("bob", 2)]:
            event = NewEvent.of(Deposited(cents=cents))
            await events.append([StreamAppend(stream, None, [event])])
        projector = Projector(balances, LogFeed("bank", events), reads, retry_delay=0)
        assert await projector.catch_up() == 5
        table = balances.table("balances")
        assert await reads.get(table, "ann") == {"cents": 11}
        assert await reads.get(table, "bob") == {"cents": 2**64 - 1}
        [seq] = await reads.parked()
        assert seq.key == "bob"
        assert [e.data["cents"] for e in seq.events] == [1, 2]
        assert seq.error == "TypeError"
        assert "64-bit" in seq.message
    finally:
        await reads.close()
        await events.close()
