"""Fencing: a worker that lost its lease cannot move a checkpoint back; leases run from the ask."""

from __future__ import annotations

from collections.abc import Sequence

from bicameral import Event, NewEvent, Projection, StreamAppend, View
from bicameral.envelope import Envelope
from bicameral.eventstore.memory import MemoryEventStore
from bicameral.readstore.memory import MemoryReadStore
from bicameral.transport.memory import MemoryTransport
from bicameral.workers.feeds import Feed, LogFeed
from bicameral.workers.partitions import ProjectorGroup
from bicameral.workers.reactions import ReactionRunner
from bicameral.workers.relay import CHECKPOINT, Relay
from tests.unit.test_saga import ANN, Deposit, bank

TTL = 10.0


async def filled(n: int) -> MemoryEventStore:
    store = MemoryEventStore("svc")
    for i in range(n):
        await store.append([StreamAppend(f"s-{i % 3}", None, [NewEvent("svc.E.v1", {"i": i})])])
    return store


async def test_a_relay_that_lost_its_lease_cannot_move_the_checkpoint_back() -> None:
    store, transport = await filled(10), MemoryTransport()
    stale = Relay(store, transport, batch_size=3, save_every=0.0)  # saves after every batch
    successor = Relay(store, transport)
    assert await stale.step(0.0) == 3
    assert await successor.step(0.0) == 7  # took over while the stale copy stalled
    assert await store.load_checkpoint(CHECKPOINT) == 10
    assert await stale.step(0.0) == 0  # publishes 4..6 again (dropped by id), saves nothing
    assert await store.load_checkpoint(CHECKPOINT) == 10
    assert await stale.step(0.0) == 0  # started over from the checkpoint: nothing left
    assert [e.position for e in transport.events("svc")] == list(range(1, 11))


class Interleaved:
    """A feed that lets another runner finish the same events before returning them."""

    def __init__(self, feed: Feed, other: ReactionRunner) -> None:
        self.source = feed.source
        self._feed = feed
        self._other = other

    async def fetch(self, after: int, limit: int, timeout: float) -> list[Envelope]:
        got = await self._feed.fetch(after, limit, timeout)
        while await self._other.step(0.0):
            pass
        return got

    async def ack(self, envelopes: Sequence[Envelope]) -> None:
        await self._feed.ack(envelopes)

    async def close(self) -> None:
        await self._feed.close()


async def test_a_reaction_runner_that_lost_its_lease_cannot_move_the_checkpoint_back() -> None:
    svc, bus, store = bank()
    for i in range(3):
        await bus.dispatch(Deposit(id=f"a{i}", amount=2_000), ANN)
    reads = MemoryReadStore()  # the runners' checkpoint lives beside their parked events
    successor = ReactionRunner(bus, svc.reactions, LogFeed("bank", store), store=reads)
    stale = ReactionRunner(
        bus,
        svc.reactions,
        Interleaved(LogFeed("bank", store), successor),
        store=reads,
        batch_size=1,
    )
    assert await stale.step(0.0) == 0  # the successor moved the checkpoint meanwhile
    mark = await reads.checkpoint(stale.checkpoint_name)
    assert mark == await store.head()
    assert await reads.checkpoint(stale.checkpoint_name) == mark


class Happened(Event, name="fencetest.Happened"):
    n: int


history = Projection("fence", collections={"streams": []})


@history.on(Happened)
def happened(event: Happened, view: View) -> None:
    """Counts nothing: only the leases matter here."""


class SlowLeases(MemoryReadStore):
    """A read store whose lease round trips each take ``rtt`` seconds of the fake clock."""

    def __init__(self, rtt: float) -> None:
        self.now = 1000.0
        super().__init__(clock=lambda: self.now)
        self.rtt = rtt

    async def acquire_lease(self, name: str, owner: str, ttl: float) -> bool:
        got = await super().acquire_lease(name, owner, ttl)
        self.now += self.rtt
        return got


async def test_lease_renewal_is_timed_from_before_its_round_trips() -> None:
    reads = SlowLeases(rtt=1.0)
    group = ProjectorGroup(
        "projector.fencetest",
        reads,
        [(history, "fencetest")],
        lambda source, consumer: LogFeed(source, MemoryEventStore("fencetest")),
        partitions=4,
        ttl=TTL,
        worker="w",
        clock=lambda: reads.now,
    )
    asked = reads.now
    await group.heartbeat()
    assert reads.now > asked + 4  # the round trips took time
    assert group.lease_deadline == asked + TTL
