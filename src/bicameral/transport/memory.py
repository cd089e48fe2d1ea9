"""MemoryTransport: the transport port inside one process, for tests."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from bicameral.consistency import Notifier
from bicameral.envelope import Envelope

__all__ = ["MemoryTransport"]


class MemoryTransport:
    """Keeps each source's events in a list; duplicates (by id) are dropped on publish."""

    def __init__(self) -> None:
        self._logs: dict[str, list[Envelope]] = {}
        self._ids: set[str] = set()
        self._notifier: Notifier | None = None

    def _notify(self) -> Notifier:
        if self._notifier is None:
            self._notifier = Notifier()
        return self._notifier

    async def start(self) -> None:
        """Does nothing: memory needs no set-up."""

    async def close(self) -> None:
        """Does nothing."""

    async def ping(self) -> None:
        """Returns at once: memory is always there."""

    async def publish(self, source: str, envelopes: Sequence[Envelope]) -> None:
        """Appends events not seen before, in order."""
        log = self._logs.setdefault(source, [])
        for env in envelopes:
            if env.id not in self._ids:
                self._ids.add(env.id)
                log.append(env)
        self._notify().notify()

    async def subscribe(
        self, source: str, consumer: str, after_position: int
    ) -> MemorySubscription:
        """Returns a subscription delivering ``source``'s events above ``after_position``."""
        return MemorySubscription(self, source, after_position)

    async def head(self, source: str) -> int:
        """Returns the highest position held for ``source``."""
        log = self._logs.get(source)
        return log[-1].position if log else 0

    def events(self, source: str) -> list[Envelope]:
        """Returns what was published for ``source`` (for tests)."""
        return list(self._logs.get(source, ()))


class MemorySubscription:
    """Delivers one source's events above a position; each at most once per subscription."""

    def __init__(self, transport: MemoryTransport, source: str, after: int) -> None:
        self._transport = transport
        self._source = source
        self._after = after
        self._cursor = after

    async def fetch(self, max_events: int, timeout: float) -> list[Envelope]:
        """Returns the next events, waiting up to ``timeout`` for one."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            log = self._transport.events(self._source)
            found = [e for e in log if e.position > self._cursor][:max_events]
            left = deadline - loop.time()
            if found or left <= 0:
                if found:
                    self._cursor = found[-1].position
                return found
            await self._transport._notify().wait(left)

    async def ack(self, envelopes: Sequence[Envelope]) -> None:
        """Moves past the acknowledged events."""
        if envelopes:
            self._after = max(self._after, max(e.position for e in envelopes))

    async def close(self) -> None:
        """Does nothing."""
