"""One transport subscription read for every partition of a projection in this process.

Each partition of a projection over another service's events has its own consumer on the
transport (``<consumer>#p<i>``), so that partitions owned by different processes read
independently. Within one process, though, the partitions it owns would each receive, decode
and acknowledge every event of the source: eight partitions, eight copies of the stream. A
``SharedRead`` reads the stream once, through one partition's subscription (the *reader*), and
keeps the events read in a window of contiguous positions; each partition's ``WindowFeed``
answers from the window while its checkpoint is inside it, and extends it through the reader
when it reached the end. A partition behind the window (one just taken over) reads through its
own subscription until it catches up.

Nothing here changes what a partition sees: the window holds a gapless run of the source's
events as the transport delivered them (``TransportFeed`` checks the run), so a batch served
from it is the batch the partition's own subscription would have delivered. Each partition
acknowledges only through its own subscription and only what it committed.
"""

from __future__ import annotations

from collections.abc import Sequence

from bicameral.envelope import Envelope
from bicameral.workers.feeds import Feed

__all__ = ["SharedRead", "WindowFeed"]

WINDOW = 4096
"""The most events a window keeps; partitions further behind read on their own."""


class SharedRead:
    """The window of one source's events shared by the partition feeds of one lane."""

    def __init__(self, window: int = WINDOW) -> None:
        self.capacity = window
        self.events: list[Envelope] = []
        self.low = 0
        """The position the window starts after (its events are ``low + 1 .. high``)."""
        self.reader: Feed | None = None
        """The feed whose subscription extends the window (positioned at its end)."""

    @property
    def high(self) -> int:
        """Returns the last position in the window (``low`` when it holds none)."""
        return self.events[-1].position if self.events else self.low

    def covers(self, after: int) -> bool:
        """Returns whether events above ``after`` can be served from the window."""
        return self.low <= after < self.high

    def served(self, after: int, limit: int) -> list[Envelope]:
        """Returns up to ``limit`` events of the window above ``after``."""
        start = after - self.low  # positions in the window are gapless
        return self.events[start : start + limit]

    async def extend(self, own: Feed, after: int, limit: int, timeout: float) -> list[Envelope]:
        """Returns the events above ``after`` (the window's end, or a fresh start), read through
        the reader (``own`` becomes the reader when there is none), and adds them."""
        if self.reader is None or not self.events or after != self.high:
            self.reader = self.reader or own
            if after != self.high:
                self.events, self.low = [], after
        got = await self.reader.fetch(after, limit, timeout)
        if got and got[0].position == self.high + 1:
            self.events.extend(got)
            if len(self.events) > self.capacity:
                cut = len(self.events) - self.capacity
                self.low = self.events[cut - 1].position
                del self.events[:cut]
        return got

    def drop_reader(self, feed: Feed) -> None:
        """Forgets ``feed`` as the reader (its partition was given up): the next extension
        makes another partition's feed the reader."""
        if self.reader is feed:
            self.reader = None


class WindowFeed:
    """One partition's feed: from the shared window when it can, else its own subscription."""

    def __init__(self, shared: SharedRead, own: Feed) -> None:
        self.source = own.source
        self.shared = shared
        self.own = own

    async def fetch(self, after: int, limit: int, timeout: float) -> list[Envelope]:
        """Returns events above ``after``: from the window, by extending it, or on its own."""
        shared = self.shared
        if shared.covers(after):
            return shared.served(after, limit)
        if after == shared.high or shared.reader is None or shared.reader is self.own:
            return await shared.extend(self.own, after, limit, timeout)
        return await self.own.fetch(after, limit, timeout)

    async def ack(self, envelopes: Sequence[Envelope]) -> None:
        """Acknowledges through this partition's own subscription (what it delivered)."""
        await self.own.ack(envelopes)

    async def close(self) -> None:
        """Closes this partition's subscription; the window stays for the others."""
        self.shared.drop_reader(self.own)
        await self.own.close()
