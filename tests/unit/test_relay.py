"""The Relay: the service's log copied to the transport in order, each event once."""

from __future__ import annotations

import asyncio

from bicameral.envelope import NewEvent
from bicameral.eventstore.memory import MemoryEventStore
from bicameral.ports import StreamAppend
from bicameral.transport.memory import MemoryTransport
from bicameral.workers.relay import CHECKPOINT, Relay


async def append(store: MemoryEventStore, n: int) -> None:
    for i in range(n):
        await store.append([StreamAppend(f"s-{i % 3}", None, [NewEvent("svc.E.v1", {"i": i})])])


async def test_the_relay_publishes_the_log_in_order_and_saves_its_checkpoint() -> None:
    store, transport = MemoryEventStore("svc"), MemoryTransport()
    await append(store, 5)
    relay = Relay(store, transport, batch_size=2)
    assert [await relay.step(0.0) for _ in range(4)] == [2, 2, 1, 0]
    assert transport.events("svc") == await store.read_all()
    assert await store.load_checkpoint(CHECKPOINT) == 5


async def test_a_relay_restarted_before_saving_its_checkpoint_publishes_each_event_once() -> None:
    store, transport = MemoryEventStore("svc"), MemoryTransport()
    await append(store, 6)
    await Relay(store, transport, batch_size=4).step(0.0)
    await store.save_checkpoint(CHECKPOINT, 1)
    again = Relay(store, transport, batch_size=4)
    while await again.step(0.0):
        pass
    assert [e.position for e in transport.events("svc")] == [1, 2, 3, 4, 5, 6]


async def test_the_relay_wakes_for_a_new_commit() -> None:
    store, transport = MemoryEventStore("svc"), MemoryTransport()
    relay = Relay(store, transport)
    stepping = asyncio.create_task(relay.step(5.0))
    await asyncio.sleep(0.01)
    assert not stepping.done()
    await append(store, 1)
    assert await asyncio.wait_for(stepping, 5.0) == 1
    assert await transport.head("svc") == 1


async def test_the_relay_saves_its_checkpoint_now_and_then_and_when_the_log_is_drained() -> None:
    store, transport = MemoryEventStore("svc"), MemoryTransport()
    await append(store, 6)
    relay = Relay(store, transport, batch_size=2, save_every=3600.0)
    assert await relay.step(0.0) == 2
    assert await store.load_checkpoint(CHECKPOINT) == 2  # the first batch saves
    assert [await relay.step(0.0) for _ in range(2)] == [2, 2]
    assert await store.load_checkpoint(CHECKPOINT) == 2  # within the interval: not yet
    assert await relay.step(0.0) == 0
    assert await store.load_checkpoint(CHECKPOINT) == 6  # the log has nothing more: saved
