"""Feeds: one source service's events in position order, from its log or from a transport."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from bicameral.envelope import Envelope
from bicameral.ports import EventSource, Subscription, Transport

__all__ = ["Feed", "LogFeed", "TransportFeed"]


class Feed(Protocol):
    """Events of one source above a position; at least once, in position order."""

    source: str

    async def fetch(self, after: int, limit: int, timeout: float) -> list[Envelope]:
        """Returns events with position above ``after`` (waiting up to ``timeout`` for one)."""
        ...

    async def ack(self, envelopes: Sequence[Envelope]) -> None:
        """Writes that ``envelopes`` were handled."""
        ...

    async def close(self) -> None:
        """Releases the feed."""
        ...


class LogFeed:
    """Reads the service's own event log directly."""

    def __init__(self, source: str, log: EventSource) -> None:
        self.source = source
        self._log = log

    async def fetch(self, after: int, limit: int, timeout: float) -> list[Envelope]:
        """Returns events above ``after`` from the log, waiting for a commit when there are none."""
        found = await self._log.read_all(after, limit)
        if not found and await self._log.wait_for(after, timeout):
            found = await self._log.read_all(after, limit)
        return found

    async def ack(self, envelopes: Sequence[Envelope]) -> None:
        """Does nothing: the reader's own checkpoint is the acknowledgement."""

    async def close(self) -> None:
        """Does nothing."""


class TransportFeed:
    """Reads another service's events through a durable transport subscription.

    Redelivered events at or below ``after`` are acknowledged and dropped; a gap (a position
    missing after ``after``) makes the feed subscribe again from ``after``, so none is skipped.
    """

    def __init__(self, source: str, consumer: str, transport: Transport) -> None:
        self.source = source
        self._consumer = consumer
        self._transport = transport
        self._sub: Subscription | None = None
        self._after = -1

    async def fetch(self, after: int, limit: int, timeout: float) -> list[Envelope]:
        """Returns the next contiguous events above ``after``."""
        if self._sub is None or after != self._after:
            await self.close()
            self._sub = await self._transport.subscribe(self.source, self._consumer, after)
        got = await self._sub.fetch(limit, timeout)
        stale = [e for e in got if e.position <= after]
        if stale:
            await self._sub.ack(stale)
        fresh: list[Envelope] = []
        expected = after + 1
        for env in sorted((e for e in got if e.position > after), key=lambda e: e.position):
            if env.position != expected:
                await self.close()
                break
            fresh.append(env)
            expected += 1
        self._after = fresh[-1].position if fresh else after
        return fresh

    async def ack(self, envelopes: Sequence[Envelope]) -> None:
        """Acknowledges handled events to the transport."""
        if self._sub is not None and envelopes:
            await self._sub.ack(envelopes)

    async def close(self) -> None:
        """Closes the subscription."""
        if self._sub is not None:
            await self._sub.close()
            self._sub = None
