"""Poison failures in a projection: parked in order per stream, the other streams go on."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bicameral import BackendError, Envelope, Event, Projection, Projector, View
from bicameral.envelope import NewEvent
from bicameral.errors import DocumentError
from bicameral.eventstore.memory import MemoryEventStore
from bicameral.parking import Park
from bicameral.ports import Changes, StreamAppend
from bicameral.readstore.memory import MemoryReadStore
from bicameral.workers.feeds import LogFeed
from bicameral.workers.parked import projection_handle, retry_sequence
from bicameral.workers.partitions import ProjectorGroup


class Moved(Event, name="ledger.Moved"):
    amount: int


BROKEN: set[str] = set()
"""Streams the handler fails on."""

ledger = Projection("ledger", collections={"accounts": [], "scratch": []}, retries=2)
CONSUMER = ledger.checkpoint("ledger")


@ledger.on(Moved)
async def moved(event: Moved, view: View, env: Envelope) -> None:
    view.put("scratch", env.subject, {"touched": env.position})
    if env.subject in BROKEN:
        raise ValueError(f"cannot fold {env.subject}")
    if event.amount == 13:
        raise BackendError("the read store is away")
    doc = await view.get("accounts", env.subject) or {"total": 0, "positions": []}
    doc["total"] += event.amount
    doc["positions"].append(env.position)
    view.put("accounts", env.subject, doc)


@pytest.fixture(autouse=True)
def _reset() -> None:
    BROKEN.clear()


async def append(log: MemoryEventStore, moves: Sequence[tuple[str, Any]]) -> None:
    for stream, amount in moves:
        event = NewEvent("ledger.Moved.v1", {"amount": amount})
        await log.append([StreamAppend(stream, None, [event])])


def fold(log: list[Envelope]) -> dict[str, dict[str, Any]]:
    """Returns each stream's document: its total and the positions applied, each once."""
    docs: dict[str, dict[str, Any]] = {}
    for env in log:
        doc = docs.setdefault(env.subject, {"total": 0, "positions": []})
        doc["total"] += env.data["amount"]
        doc["positions"].append(env.position)
    return docs


async def accounts(store: MemoryReadStore) -> dict[str, dict[str, Any]]:
    """Returns the committed documents of every stream."""
    return dict(await store.all(ledger.table("accounts")))


def projector(log: MemoryEventStore, store: MemoryReadStore, batch_size: int = 500) -> Projector:
    return Projector(
        ledger,
        LogFeed("ledger", log),
        store,
        batch_size=batch_size,
        service="ledger",
        retry_delay=0,
    )


async def test_a_failing_stream_is_parked_in_order_and_the_others_go_on() -> None:
    log, store = MemoryEventStore("ledger"), MemoryReadStore()
    await append(log, [(s, i) for i in range(1, 6) for s in ("a", "b", "c")])
    BROKEN.add("b")
    assert await projector(log, store).catch_up() == 15
    everything = await log.read_all()
    good = [e for e in everything if e.subject != "b"]
    assert await accounts(store) == fold(good)
    assert await store.checkpoint(CONSUMER) == 15
    [seq] = await store.parked()
    assert (seq.consumer, seq.key, seq.service) == (CONSUMER, "b", "ledger")
    assert seq.events == tuple(e for e in everything if e.subject == "b")
    assert seq.attempts == 3  # the first try and two retries
    assert seq.error == "ValueError"
    assert seq.message == "cannot fold b"
    assert "Traceback" in seq.traceback
    assert await store.get(ledger.table("scratch"), "b") is None  # the failed try was undone


async def test_later_batches_park_behind_and_a_restarted_projector_keeps_parking() -> None:
    log, store = MemoryEventStore("ledger"), MemoryReadStore()
    BROKEN.add("b")
    await append(log, [("a", 1), ("b", 1), ("a", 2)])
    await projector(log, store, batch_size=2).catch_up()
    BROKEN.clear()  # fixed, but nothing retried: b's later events must still wait
    await append(log, [("b", 2), ("a", 3), ("b", 3)])
    await projector(log, store, batch_size=1).catch_up()
    [seq] = await store.parked()
    assert [e.data["amount"] for e in seq.events] == [1, 2, 3]
    assert "b" not in await accounts(store)
    assert (await accounts(store))["a"]["total"] == 6


async def test_an_event_that_does_not_decode_is_parked() -> None:
    log, store = MemoryEventStore("ledger"), MemoryReadStore()
    await append(log, [("a", 1), ("b", "not a number"), ("b", 2), ("a", 2)])
    await projector(log, store).catch_up()
    [seq] = await store.parked()
    assert seq.error == "pydantic_core._pydantic_core.ValidationError"
    assert [e.data["amount"] for e in seq.events] == ["not a number", 2]
    assert (await accounts(store))["a"]["total"] == 3


async def test_a_backend_error_fails_the_step_and_parks_nothing() -> None:
    log, store = MemoryEventStore("ledger"), MemoryReadStore()
    await append(log, [("a", 1), ("a", 13)])
    with pytest.raises(BackendError):
        await projector(log, store).step(timeout=0)
    assert await store.parked() == []
    assert await store.checkpoint(CONSUMER) == 0


class PickyStore(MemoryReadStore):
    """A read store that cannot hold a total of 1000 or more (as PostgreSQL refuses NUL)."""

    async def commit(
        self,
        checkpoint: str,
        expected: int,
        position: int,
        changes: Changes,
        parked: Sequence[Park] = (),
    ) -> bool:
        if any(doc and doc.get("total", 0) >= 1000 for doc in changes.values()):
            raise DocumentError("total out of range")
        return await super().commit(checkpoint, expected, position, changes, parked)


async def test_an_event_whose_document_the_store_refuses_is_parked_alone() -> None:
    log, store = MemoryEventStore("ledger"), PickyStore()
    await append(log, [("a", 1), ("b", 999), ("b", 1), ("a", 2), ("b", 5), ("c", 3)])
    assert await projector(log, store).catch_up() == 6
    docs = await accounts(store)
    assert docs["a"]["total"] == 3
    assert docs["c"]["total"] == 3
    assert docs["b"]["total"] == 999
    [seq] = await store.parked()
    assert seq.error == "bicameral.errors.DocumentError"
    assert [e.data["amount"] for e in seq.events] == [1, 5]
    assert await store.checkpoint(CONSUMER) == 6


async def test_a_retry_after_the_fix_gives_the_fold_and_the_stream_goes_live_again() -> None:
    log, store = MemoryEventStore("ledger"), MemoryReadStore()
    BROKEN.add("b")
    await append(log, [(s, i) for i in range(1, 4) for s in ("a", "b")])
    live = projector(log, store)
    await live.catch_up()
    [seq] = await store.parked()

    failed = await retry_sequence(store, seq.id, projection_handle(ledger, store))
    assert (failed.applied, failed.left, failed.ok) == (0, 3, False)
    assert failed.failure is not None
    assert failed.failure.error == "ValueError"
    again = await store.parked_sequence(seq.id)
    assert again is not None
    assert again.attempts == seq.attempts + 1

    BROKEN.clear()
    done = await retry_sequence(store, seq.id, projection_handle(ledger, store))
    assert (done.applied, done.left, done.ok) == (3, 0, True)
    assert await store.parked() == []
    await append(log, [("b", 10)])
    await live.catch_up()  # its cache still names b: the park is refused, b folds live
    assert await store.parked() == []
    assert await accounts(store) == fold(await log.read_all())


async def test_a_retry_stops_at_the_first_event_that_fails_again() -> None:
    log, store = MemoryEventStore("ledger"), MemoryReadStore()
    BROKEN.add("b")
    await append(log, [("b", 1), ("b", 2), ("b", 13), ("b", 4)])
    await projector(log, store).catch_up()
    [seq] = await store.parked()
    BROKEN.clear()
    with pytest.raises(BackendError):  # a backend error is not a failure of the event
        await retry_sequence(store, seq.id, projection_handle(ledger, store))
    left = await store.parked_sequence(seq.id)
    assert left is not None
    assert [e.data["amount"] for e in left.events] == [13, 4]
    assert left.attempts == seq.attempts
    assert (await accounts(store))["b"]["total"] == 3


class YieldingStore(MemoryReadStore):
    """A memory store that lets other tasks run before each read and write, as a server would."""

    def __init__(self, pauses: list[int]) -> None:
        super().__init__()
        self._pauses = pauses or [0]
        self._calls = 0

    async def _pause(self) -> None:
        self._calls += 1
        for _ in range(self._pauses[self._calls % len(self._pauses)]):
            await asyncio.sleep(0)

    async def checkpoint(self, checkpoint: str) -> int:
        await self._pause()
        return await super().checkpoint(checkpoint)

    async def get(self, collection: str, key: str) -> dict[str, Any] | None:
        await self._pause()
        return await super().get(collection, key)

    async def parked_keys(self, consumer: str) -> set[str]:
        await self._pause()
        return await super().parked_keys(consumer)

    async def parked_sequence(self, sequence: str) -> Any:
        await self._pause()
        return await super().parked_sequence(sequence)

    async def commit(
        self,
        checkpoint: str,
        expected: int,
        position: int,
        changes: Changes,
        parked: Sequence[Park] = (),
    ) -> bool:
        await self._pause()
        return await super().commit(checkpoint, expected, position, changes, parked)

    async def unpark(
        self, sequence: str, event_id: str, changes: Changes, failure: Any = None
    ) -> bool:
        await self._pause()
        return await super().unpark(sequence, event_id, changes, failure)


@given(
    st.lists(st.tuples(st.sampled_from("abcdef"), st.integers(1, 9)), max_size=40),
    st.sets(st.sampled_from("abcdef"), max_size=3),
    st.integers(1, 7),
    st.lists(st.integers(0, 12), max_size=6),
    st.lists(st.integers(0, 3), max_size=8),
)
async def test_retries_racing_the_live_projector_apply_each_event_once_in_order(
    moves: list[tuple[str, int]],
    broken: set[str],
    batch_size: int,
    split: list[int],
    pauses: list[int],
) -> None:
    """Whatever the interleaving of live batches and retries, every stream ends at its fold."""
    BROKEN.clear()
    BROKEN.update(broken)
    log, store = MemoryEventStore("ledger"), YieldingStore(pauses)
    live = projector(log, store, batch_size)
    rival = projector(log, store, batch_size)
    cut = sorted({min(s, len(moves)) for s in split} | {0, len(moves)})
    for start, end in itertools.pairwise(cut):
        await append(log, moves[start:end])
        BROKEN.clear() if start else None

        async def retry_all() -> None:
            for seq in await store.parked():
                await retry_sequence(store, seq.id, projection_handle(ledger, store))

        await asyncio.gather(live.catch_up(), retry_all(), rival.catch_up(), retry_all())
    BROKEN.clear()
    for seq in await store.parked():
        await retry_sequence(store, seq.id, projection_handle(ledger, store))
    await live.catch_up()
    everything = await log.read_all()
    assert await store.parked() == []
    assert await accounts(store) == fold(everything)


async def test_partitions_park_per_stream_and_a_successor_keeps_the_order() -> None:
    log, store = MemoryEventStore("ledger"), MemoryReadStore()
    BROKEN.add("s3")
    await append(log, [(f"s{i % 10}", i) for i in range(60)])
    feed = lambda source, consumer: LogFeed(source, log)  # noqa: E731
    first = ProjectorGroup("g", store, [(ledger, "ledger")], feed, partitions=4, service="ledger")
    await first.catch_up()
    [seq] = await store.parked()
    assert seq.consumer == CONSUMER
    assert [e.data["amount"] for e in seq.events] == list(range(3, 60, 10))
    await first.leave()
    BROKEN.clear()
    await append(log, [("s3", 100), ("s4", 100)])
    second = ProjectorGroup("g", store, [(ledger, "ledger")], feed, partitions=4, service="ledger")
    await second.catch_up()
    [seq] = await store.parked()
    assert seq.events[-1].data["amount"] == 100
    assert "s3" not in await accounts(store)
    assert (await accounts(store))["s4"]["total"] == sum(range(4, 60, 10)) + 100
