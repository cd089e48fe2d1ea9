"""Commit notices: one process learning that read-store checkpoints moved, whoever moved them.

A read store that can tell (``bicameral.ports.CommitFeed``) keeps one ``Commits`` per process.
Its backend watcher (a PostgreSQL ``LISTEN``, a Redis subscription, a SQLite poller, or the
memory store's own commits) calls ``publish`` with the names of the checkpoints that moved;
each ``Listener`` collects the names published since it last looked. Nothing queues: a listener
that looks late finds one set, the union of what it missed. ``EVERYTHING`` in a set means the
watcher may have missed notices (it lost its connection): assume every checkpoint moved.

The watcher runs only while someone listens: it starts with the first listener and stops
after the last one closes. A watcher that fails is started again after a pause that doubles
up to 30 s; once it listens again, every listener is told ``EVERYTHING``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType

from bicameral.errors import BackendError

__all__ = ["EVERYTHING", "Commits", "Listener", "Watcher"]

EVERYTHING = "*"
"""A name that stands for every checkpoint: notices may have been missed."""

Watcher = Callable[["Commits"], Awaitable[None]]
"""Runs until cancelled: calls ``commits.connected()`` once it listens, then
``commits.publish(names)`` for each commit it learns of; raises when its connection fails."""

FIRST_PAUSE = 0.1
MAX_PAUSE = 30.0
log = logging.getLogger("bicameral.commits")


class Listener:
    """One listener's view of the notices: the names published since it last looked."""

    def __init__(self, commits: Commits) -> None:
        self._commits = commits
        self._names: set[str] = set()
        self._ready = asyncio.Event()

    def _add(self, names: frozenset[str]) -> None:
        self._names |= names
        self._ready.set()

    async def next(self) -> frozenset[str]:
        """Returns the names published since the last call, waiting for at least one."""
        await self._ready.wait()
        self._ready.clear()
        names, self._names = frozenset(self._names), set()
        return names

    async def close(self) -> None:
        """Stops listening (the last listener to close stops the watcher)."""
        await self._commits._leave(self)

    async def __aenter__(self) -> Listener:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


class Commits:
    """A process's fan-out of one read store's commit notices to its listeners."""

    def __init__(self, watcher: Watcher | None = None, *, name: str = "read store") -> None:
        self._watcher = watcher
        self._name = name
        self._listeners: set[Listener] = set()
        self._task: asyncio.Task[None] | None = None
        self._missed = False
        self._pause = FIRST_PAUSE
        self._listening = asyncio.Event()

    @property
    def watching(self) -> bool:
        """Returns True while the backend watcher runs."""
        return self._task is not None and not self._task.done()

    def listen(self) -> Listener:
        """Returns a new listener (starting the watcher for the first one)."""
        listener = Listener(self)
        self._listeners.add(listener)
        if self._watcher is not None and not self.watching:
            self._task = asyncio.create_task(self._watch(self._watcher))
        return listener

    def publish(self, names: Iterable[str]) -> None:
        """Tells every listener that the checkpoints ``names`` moved."""
        found = frozenset(names)
        if found:
            for listener in self._listeners:
                listener._add(found)

    def connected(self) -> None:
        """Says the watcher listens now: after a failure, tells everyone ``EVERYTHING``."""
        self._pause = FIRST_PAUSE
        self._listening.set()
        if self._missed:
            self._missed = False
            self.publish({EVERYTHING})

    async def _watch(self, watcher: Watcher) -> None:
        while True:
            try:
                await watcher(self)
                return
            except Exception as exc:
                log.warning(
                    "commit watcher of %s failed (%s); again in %gs", self._name, exc, self._pause
                )
            self._missed = True
            self._listening.clear()
            await asyncio.sleep(self._pause)
            self._pause = min(self._pause * 2, MAX_PAUSE)

    async def ready(self, timeout: float) -> None:
        """Returns once the watcher listens (so no later commit goes unheard); raises
        BackendError when it does not within ``timeout`` seconds."""
        if self._watcher is None:
            return
        try:
            await asyncio.wait_for(self._listening.wait(), timeout)
        except TimeoutError:
            raise BackendError(f"no commit notices from {self._name} yet") from None

    async def _leave(self, listener: Listener) -> None:
        self._listeners.discard(listener)
        if not self._listeners:
            await self.stop()

    async def stop(self) -> None:
        """Stops the watcher, if running (listeners stay, and restart it with the next one)."""
        task, self._task = self._task, None
        self._listening.clear()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
