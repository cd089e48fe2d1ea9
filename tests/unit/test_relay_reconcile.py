"""The relay resumes from the lower of its checkpoint and the transport head."""

from __future__ import annotations

from bicameral.envelope import NewEvent
from bicameral.eventstore.memory import MemoryEventStore
from bicameral.ports import StreamAppend
from bicameral.transport.memory import MemoryTransport
from bicameral.workers.relay import CHECKPOINT, Relay


async def _store_with(count: int) -> MemoryEventStore:
    store = MemoryEventStore("svc")
    events = [NewEvent("svc.Happened", {"n": n}) for n in range(count)]
    await store.append([StreamAppend("s-1", None, events)])
    return store


async def test_the_relay_publishes_the_log_and_saves_its_checkpoint() -> None:
    store, transport = await _store_with(5), MemoryTransport()
    relay = Relay(store, transport)
    assert await relay.step(timeout=0) == 5
    assert await relay.step(timeout=0) == 0
    assert [e.position for e in transport.events("svc")] == [1, 2, 3, 4, 5]
    assert await store.load_checkpoint(CHECKPOINT) == 5


async def test_a_restarted_relay_republishes_what_the_transport_lost() -> None:
    store = await _store_with(10)
    await store.save_checkpoint(CHECKPOINT, 10)
    transport = MemoryTransport()
    await transport.publish("svc", (await store.read_all(0, 100))[:6])
    assert await Relay(store, transport).step(timeout=0) == 4
    assert [e.position for e in transport.events("svc")] == list(range(1, 11))


async def test_a_relay_behind_the_transport_resumes_from_its_checkpoint() -> None:
    store, transport = await _store_with(8), MemoryTransport()
    await transport.publish("svc", await store.read_all(0, 100))
    await store.save_checkpoint(CHECKPOINT, 3)
    assert await Relay(store, transport).step(timeout=0) == 5
    assert [e.position for e in transport.events("svc")] == list(range(1, 9))
