"""One reader shared by many watchers: it reads every ``every`` seconds while anyone watches,
and each watcher gets the latest reading, never a backlog.

A watcher that reads slowly skips the readings it missed; it never holds the reader or other
watchers back. With no watcher, nothing is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["Poller", "Watch"]

T = TypeVar("T")
log = logging.getLogger("bicameral.console")


class Watch(Generic[T]):
    """One watcher's view of a poller: the readings it has not seen yet."""

    def __init__(self, poller: Poller[T]) -> None:
        self.poller = poller
        self.seen = 0

    async def next(self, timeout: float) -> T | None:
        """Returns the latest reading not seen yet, or None when none came within ``timeout``."""
        poller = self.poller
        if poller.count == self.seen:
            tick = poller.tick
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(tick.wait(), timeout)
        if poller.count == self.seen or poller.latest is None:
            return None
        self.seen = poller.count
        return poller.latest


class Poller(Generic[T]):
    """Calls ``read`` every ``every`` seconds while at least one ``watch`` is open."""

    def __init__(self, read: Callable[[], Awaitable[T]], every: float = 1.0) -> None:
        self.read = read
        self.every = every
        self.latest: T | None = None
        self.count = 0
        """How many readings were taken; a watcher compares it with what it saw."""
        self.tick = asyncio.Event()
        self.watchers = 0
        self._task: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def watch(self) -> AsyncIterator[Watch[T]]:
        """Yields a watch of this poller; reading starts with the first watch, stops after the
        last."""
        self.watchers += 1
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        try:
            yield Watch(self)
        finally:
            self.watchers -= 1
            if self.watchers == 0 and self._task is not None:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
                self._task = None

    async def _run(self) -> None:
        while self.watchers:
            try:
                reading = await self.read()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("the console's status reading failed", exc_info=True)
            else:
                self.latest = reading
                self.count += 1
                tick, self.tick = self.tick, asyncio.Event()
                tick.set()
            await asyncio.sleep(self.every)
