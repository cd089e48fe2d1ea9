"""The partitions of a projection over a transport share one read of it per process."""

from __future__ import annotations

from bicameral import NewEvent, StreamAppend
from bicameral.envelope import Envelope
from bicameral.eventstore.memory import MemoryEventStore
from bicameral.readstore.memory import MemoryReadStore
from bicameral.transport.memory import MemorySubscription, MemoryTransport
from bicameral.workers.feeds import TransportFeed
from bicameral.workers.partitions import ProjectorGroup, projection_position
from bicameral.workers.shared import SharedRead, WindowFeed
from tests.unit.test_partitions import history

SOURCE = "parttest"


class CountingTransport(MemoryTransport):
    """A memory transport that counts the events each consumer was handed."""

    def __init__(self) -> None:
        super().__init__()
        self.handed: dict[str, int] = {}

    async def subscribe(
        self, source: str, consumer: str, after_position: int
    ) -> MemorySubscription:
        sub = await super().subscribe(source, consumer, after_position)
        fetch = sub.fetch

        async def counted(max_events: int, timeout: float) -> list[Envelope]:
            got = await fetch(max_events, timeout)
            self.handed[consumer] = self.handed.get(consumer, 0) + len(got)
            return got

        sub.fetch = counted  # type: ignore[method-assign]
        return sub


async def published(n: int, transport: MemoryTransport) -> list[Envelope]:
    log = MemoryEventStore(SOURCE)
    for i in range(n):
        event = NewEvent("parttest.Happened.v1", {"n": i})
        await log.append([StreamAppend(f"s-{i % 5}", None, [event])])
    events = await log.read_all(0, n)
    await transport.publish(SOURCE, events)
    return events


async def test_eight_partitions_read_the_source_once_and_fold_it_whole() -> None:
    transport, reads = CountingTransport(), MemoryReadStore()
    events = await published(200, transport)
    group = ProjectorGroup(
        "projector.other",
        reads,
        [(history, SOURCE)],
        lambda source, consumer: TransportFeed(source, consumer, transport),
        partitions=8,
        batch_size=50,
    )
    assert await group.catch_up() == 8 * 200  # every partition moved over every event
    assert await projection_position(reads, history.checkpoint(SOURCE), 8) == 200
    docs = [await reads.get(history.table("streams"), f"s-{k}") for k in range(5)]
    assert sorted(p for doc in docs if doc for p in doc["positions"]) == [
        e.position for e in events
    ]
    assert sum(transport.handed.values()) == 200  # one read, not eight
    assert len(transport.handed) == 1


async def test_a_partition_behind_the_window_reads_on_its_own() -> None:
    transport = CountingTransport()
    await published(30, transport)
    shared = SharedRead(window=10)
    ahead = WindowFeed(shared, TransportFeed(SOURCE, "c#p0", transport))
    behind = WindowFeed(shared, TransportFeed(SOURCE, "c#p1", transport))
    assert [e.position for e in await ahead.fetch(0, 25, 0.0)] == list(range(1, 26))
    assert shared.low == 15  # the window kept the last 10
    assert [e.position for e in await behind.fetch(20, 3, 0.0)] == [21, 22, 23]  # from the window
    assert "c#p1" not in transport.handed
    assert [e.position for e in await behind.fetch(5, 5, 0.0)] == [6, 7, 8, 9, 10]
    assert transport.handed["c#p1"] == 5  # behind the window: its own subscription
    assert [e.position for e in await behind.fetch(25, 10, 0.0)] == [26, 27, 28, 29, 30]
    assert transport.handed["c#p0"] == 30  # at the window's end: extended by the reader
