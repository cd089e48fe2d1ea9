"""Feeds: one source's events above a position, in order and without gaps."""

from __future__ import annotations

from datetime import UTC, datetime

from bicameral import Envelope
from bicameral.transport.memory import MemoryTransport
from bicameral.workers.feeds import TransportFeed


def env(position: int) -> Envelope:
    return Envelope(
        id=f"e{position}",
        type="shipping.Shipped.v1",
        source="shipping",
        subject="s",
        time=datetime(2026, 1, 1, tzinfo=UTC),
        stream_version=position,
        position=position,
        data={},
    )


def positions(found: list[Envelope]) -> list[int]:
    return [e.position for e in found]


async def test_a_transport_feed_stops_at_a_gap_until_the_missing_event_arrives() -> None:
    transport = MemoryTransport()
    feed = TransportFeed("shipping", "orders.p", transport)
    await transport.publish("shipping", [env(1), env(2), env(4)])
    assert positions(await feed.fetch(0, 10, 0.0)) == [1, 2]
    assert positions(await feed.fetch(2, 10, 0.0)) == []
    await transport.publish("shipping", [env(3)])
    assert positions(await feed.fetch(2, 10, 0.0)) == [3, 4]


async def test_a_transport_feed_drops_what_is_at_or_below_the_position_asked() -> None:
    transport = MemoryTransport()
    await transport.publish("shipping", [env(p) for p in range(1, 6)])
    feed = TransportFeed("shipping", "orders.p", transport)
    assert positions(await feed.fetch(3, 10, 0.0)) == [4, 5]
    assert positions(await feed.fetch(5, 10, 0.0)) == []


async def test_a_transport_feed_starts_again_from_an_earlier_position_when_asked() -> None:
    transport = MemoryTransport()
    await transport.publish("shipping", [env(p) for p in range(1, 4)])
    feed = TransportFeed("shipping", "orders.p", transport)
    assert positions(await feed.fetch(0, 10, 0.0)) == [1, 2, 3]
    assert positions(await feed.fetch(1, 10, 0.0)) == [2, 3], "a failed commit re-reads"
    await feed.close()
