"""The Projector: batches, checkpoints, and exactly-once effects under redelivery and restarts."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bicameral import Envelope, Event, Projector
from bicameral.envelope import NewEvent
from bicameral.eventstore.memory import MemoryEventStore
from bicameral.ports import StreamAppend
from bicameral.readstore.memory import MemoryReadStore
from bicameral.workers.feeds import LogFeed
from tests.unit.tally import Added, Noted, Removed, fold_once, log_of, read_model, tally

CHECKPOINT = tally.checkpoint("tally")

events = st.lists(
    st.one_of(
        st.builds(Added, key=st.sampled_from("abcd"), n=st.integers(-50, 50)),
        st.builds(Removed, key=st.sampled_from("abcd")),
        st.builds(Noted, text=st.just("note")),
    ),
    max_size=40,
)
hypothesis_settings = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


class RedeliveringFeed:
    """Delivers the log at least once: each fetch may start some events before ``after``."""

    source = "tally"

    def __init__(self, log: list[Envelope], data: st.DataObject) -> None:
        self.log = log
        self.data = data
        self.fetches = 0

    async def fetch(self, after: int, limit: int, timeout: float) -> list[Envelope]:
        self.fetches += 1
        back = self.data.draw(st.integers(0, 4), label="redelivered")
        size = self.data.draw(st.integers(1, max(1, limit)), label="batch")
        await asyncio.sleep(0)
        start = max(0, after - back)
        return self.log[start : start + size]

    async def ack(self, envelopes: Sequence[Envelope]) -> None:
        """Does nothing: the checkpoint is the acknowledgement."""

    async def close(self) -> None:
        """Does nothing."""


async def drive(projector: Projector, last: int, max_steps: int = 2_000) -> None:
    """Steps ``projector`` until its checkpoint reaches ``last``."""
    await projector.prepare()
    for _ in range(max_steps):
        if await projector.store.checkpoint(CHECKPOINT) >= last:
            return
        await projector.step(timeout=0.0)
    raise AssertionError(f"projector did not reach {last}")


def last_position(log: list[Envelope]) -> int:
    return log[-1].position if log else 0


@hypothesis_settings
@given(events, st.integers(1, 8), st.data())
async def test_redelivered_and_overlapping_batches_give_the_fold_of_the_log(
    stream: list[Event], batch_size: int, data: st.DataObject
) -> None:
    log = await log_of(stream)
    store = MemoryReadStore()
    projector = Projector(tally, RedeliveringFeed(log, data), store, batch_size=batch_size)
    await drive(projector, last_position(log))
    assert await read_model(store) == await read_model(await fold_once(log))


@hypothesis_settings
@given(events, st.lists(st.integers(0, 6), max_size=6), st.integers(1, 8), st.data())
async def test_restarting_with_a_fresh_projector_gives_the_fold_of_the_log(
    stream: list[Event], stops: list[int], batch_size: int, data: st.DataObject
) -> None:
    log = await log_of(stream)
    store = MemoryReadStore()
    for steps in stops:
        projector = Projector(tally, RedeliveringFeed(log, data), store, batch_size=batch_size)
        await projector.prepare()
        for _ in range(steps):
            await projector.step(timeout=0.0)
    final = Projector(tally, RedeliveringFeed(log, data), store, batch_size=batch_size)
    await drive(final, last_position(log))
    assert await read_model(store) == await read_model(await fold_once(log))


@hypothesis_settings
@given(events, st.integers(1, 8), st.data())
async def test_feeding_the_whole_log_again_changes_nothing(
    stream: list[Event], batch_size: int, data: st.DataObject
) -> None:
    log = await log_of(stream)
    store = await fold_once(log)
    before = await read_model(store)

    class Replay(RedeliveringFeed):
        async def fetch(self, after: int, limit: int, timeout: float) -> list[Envelope]:
            return self.log[:limit]

    again = Projector(tally, Replay(log, data), store, batch_size=batch_size)
    assert await again.step(timeout=0.0) == 0
    assert await read_model(store) == before


@hypothesis_settings
@given(events, st.integers(2, 4), st.integers(1, 8), st.data())
async def test_racing_projectors_never_apply_an_event_twice(
    stream: list[Event], racers: int, batch_size: int, data: st.DataObject
) -> None:
    log = await log_of(stream)
    store = MemoryReadStore()
    projectors = [
        Projector(tally, RedeliveringFeed(log, data), store, batch_size=batch_size)
        for _ in range(racers)
    ]
    await asyncio.gather(*(drive(p, last_position(log)) for p in projectors))
    model = await read_model(store)
    assert model == await read_model(await fold_once(log))
    journal = dict(model["journal"]).get("all", {"positions": []})["positions"]
    assert len(journal) == len(set(journal))


async def test_a_projector_resumes_after_its_checkpoint_on_the_live_log() -> None:
    store = MemoryEventStore("tally")
    reads = MemoryReadStore()

    async def add(key: str, n: int) -> None:
        await store.append([StreamAppend(f"t-{key}", None, [NewEvent.of(Added(key=key, n=n))])])

    await add("a", 1)
    await add("a", 2)
    first = Projector(tally, LogFeed("tally", store), reads, batch_size=1)
    assert await first.step(timeout=0.0) == 1
    await add("b", 5)
    second = Projector(tally, LogFeed("tally", store), reads)
    assert await second.catch_up() == 2
    assert await second.catch_up() == 0
    assert await reads.get(tally.table("totals"), "a") == {
        "key": "a",
        "total": 3,
        "count": 2,
        "parity": 1,
    }
    assert await reads.checkpoint(CHECKPOINT) == 3


async def test_a_projector_waits_for_a_new_commit_on_the_log() -> None:
    store = MemoryEventStore("tally")
    reads = MemoryReadStore()
    projector = Projector(tally, LogFeed("tally", store), reads)
    await projector.prepare()
    stepping = asyncio.create_task(projector.step(timeout=5.0))
    await asyncio.sleep(0.01)
    assert not stepping.done()
    await store.append([StreamAppend("t", None, [NewEvent.of(Added(key="a", n=1))])])
    assert await asyncio.wait_for(stepping, 5.0) == 1


async def test_run_folds_until_stopped() -> None:
    log = await log_of([Added(key="a", n=1), Added(key="b", n=2)])
    store = MemoryReadStore()

    class Once(RedeliveringFeed):
        async def fetch(self, after: int, limit: int, timeout: float) -> list[Envelope]:
            await asyncio.sleep(0.001)
            return self.log[after : after + limit]

    stop = asyncio.Event()
    projector = Projector(tally, Once(log, None), store)  # type: ignore[arg-type]
    running = asyncio.create_task(projector.run(stop))
    for _ in range(500):
        if await store.checkpoint(CHECKPOINT) == 2:
            break
        await asyncio.sleep(0.001)
    stop.set()
    await asyncio.wait_for(running, 5.0)
    assert await read_model(store) == await read_model(await fold_once(log))


class ListFeed:
    """Delivers a fixed log in order, ``limit`` events at a time, counting acknowledgements."""

    source = "tally"

    def __init__(self, log: list[Envelope]) -> None:
        self.log = log
        self.acked: list[int] = []

    async def fetch(self, after: int, limit: int, timeout: float) -> list[Envelope]:
        return [e for e in self.log if e.position > after][:limit]

    async def ack(self, envelopes: Sequence[Envelope]) -> None:
        self.acked += [e.position for e in envelopes]

    async def close(self) -> None:
        """Does nothing."""


async def test_batches_with_nothing_to_fold_are_committed_once_the_feed_has_no_more() -> None:
    feed = ListFeed(await log_of([Noted(text="a"), Noted(text="b"), Noted(text="c")]))
    store = MemoryReadStore()
    projector = Projector(tally, feed, store, batch_size=1, defer=3600.0)
    assert [await projector.step(0.0) for _ in range(3)] == [1, 1, 1]
    assert await store.checkpoint(CHECKPOINT) == 0  # passed over, not committed yet
    assert feed.acked == []
    assert await projector.step(0.0) == 0
    assert await store.checkpoint(CHECKPOINT) == 3  # nothing more: committed at once
    assert feed.acked == [1, 2, 3]


async def test_events_passed_over_are_committed_with_the_next_batch_that_folds() -> None:
    feed = ListFeed(await log_of([Noted(text="a"), Noted(text="b"), Added(key="k", n=2)]))
    store = MemoryReadStore()
    projector = Projector(tally, feed, store, batch_size=1, defer=3600.0)
    assert [await projector.step(0.0) for _ in range(3)] == [1, 1, 1]
    assert await store.checkpoint(CHECKPOINT) == 3
    assert (await read_model(store))["totals"] == [
        ("k", {"key": "k", "total": 2, "count": 1, "parity": 0})
    ]


async def test_with_no_deferral_each_batch_commits() -> None:
    feed = ListFeed(await log_of([Noted(text="a"), Noted(text="b")]))
    store = MemoryReadStore()
    projector = Projector(tally, feed, store, batch_size=1, defer=0.0)
    await projector.step(0.0)
    assert await store.checkpoint(CHECKPOINT) == 1
