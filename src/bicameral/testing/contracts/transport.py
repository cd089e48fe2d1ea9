"""The contract every Transport adapter passes: order, dedup by id, durable consumers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from bicameral.envelope import Envelope
from bicameral.ports import Transport

__all__ = ["TransportContract", "envelopes"]


def envelopes(source: str, first: int, last: int) -> list[Envelope]:
    """Returns envelopes of ``source`` at positions ``first..last`` with fresh ids."""
    now = datetime.now(UTC)
    return [
        Envelope(
            str(uuid.uuid4()),
            "test.Happened.v1",
            source,
            f"s-{p % 3}",
            now,
            p,
            p,
            {"p": p},
            {"correlation_id": "c", "principal": {"subject": "ann", "roles": ["x"]}},
        )
        for p in range(first, last + 1)
    ]


class TransportContract:
    """Subclass per backend and implement ``make_transport``; use ``self.source`` names."""

    async def make_transport(self) -> Transport:
        """Returns a new, not yet started transport."""
        raise NotImplementedError

    @pytest.fixture
    async def transport(self) -> AsyncIterator[Transport]:
        """Returns a started transport, closed after the test."""
        made = await self.make_transport()
        await made.start()
        try:
            yield made
        finally:
            await made.close()

    @pytest.fixture
    def source(self) -> str:
        """Returns a source service name unique to the test."""
        return f"src{uuid.uuid4().hex[:10]}"

    async def test_a_started_transport_answers_a_ping(self, transport: Transport) -> None:
        await asyncio.wait_for(transport.ping(), 5.0)

    async def test_subscribers_get_every_event_in_order(
        self, transport: Transport, source: str
    ) -> None:
        sent = envelopes(source, 1, 25)
        await transport.publish(source, sent[:10])
        await transport.publish(source, sent[10:])
        sub = await transport.subscribe(source, "c1", 0)
        got: list[Envelope] = []
        while len(got) < 25:
            batch = await sub.fetch(10, 2.0)
            assert batch, "the transport stopped delivering"
            got.extend(batch)
            await sub.ack(batch)
        await sub.close()
        assert [e.position for e in got] == list(range(1, 26))
        assert got[0] == sent[0]
        assert await transport.head(source) == 25

    async def test_a_republished_event_is_delivered_once(
        self, transport: Transport, source: str
    ) -> None:
        sent = envelopes(source, 1, 5)
        await transport.publish(source, sent[:3])
        await transport.publish(source, sent)
        sub = await transport.subscribe(source, "c1", 0)
        got = await sub.fetch(100, 2.0)
        more = await sub.fetch(100, 0.2)
        await sub.close()
        positions = [e.position for e in got + more]
        assert sorted(positions) == [1, 2, 3, 4, 5]

    async def test_a_subscription_starts_after_the_given_position(
        self, transport: Transport, source: str
    ) -> None:
        await transport.publish(source, envelopes(source, 1, 6))
        sub = await transport.subscribe(source, "c1", 4)
        got = await sub.fetch(100, 2.0)
        await sub.close()
        assert [e.position for e in got if e.position > 4] == [5, 6]

    async def test_fetch_times_out_empty_then_wakes_on_publish(
        self, transport: Transport, source: str
    ) -> None:
        sub = await transport.subscribe(source, "c1", 0)
        assert await sub.fetch(10, 0.1) == []

        async def later() -> None:
            await asyncio.sleep(0.1)
            await transport.publish(source, envelopes(source, 1, 1))

        task = asyncio.create_task(later())
        got = await sub.fetch(10, 5.0)
        await task
        await sub.close()
        assert [e.position for e in got] == [1]

    async def test_acknowledged_events_are_not_delivered_again(
        self, transport: Transport, source: str
    ) -> None:
        await transport.publish(source, envelopes(source, 1, 4))
        sub = await transport.subscribe(source, "durable", 0)
        first = await sub.fetch(2, 2.0)
        await sub.ack(first)
        await sub.close()
        acked = max(e.position for e in first)
        again = await transport.subscribe(source, "durable", acked)
        rest = await again.fetch(100, 2.0)
        await again.close()
        assert [e.position for e in rest] == list(range(acked + 1, 5))

    async def test_consumers_and_sources_are_independent(
        self, transport: Transport, source: str
    ) -> None:
        other = source + "x"
        await transport.publish(source, envelopes(source, 1, 3))
        await transport.publish(other, envelopes(other, 1, 2))
        a = await transport.subscribe(source, "a", 0)
        got_a = await a.fetch(100, 2.0)
        await a.ack(got_a)
        b = await transport.subscribe(source, "b", 0)
        got_b = await b.fetch(100, 2.0)
        o = await transport.subscribe(other, "a", 0)
        got_o = await o.fetch(100, 2.0)
        for sub in (a, b, o):
            await sub.close()
        assert [e.position for e in got_a] == [1, 2, 3]
        assert [e.position for e in got_b] == [1, 2, 3]
        assert [(e.source, e.position) for e in got_o] == [(other, 1), (other, 2)]
        assert await transport.head(other) == 2
