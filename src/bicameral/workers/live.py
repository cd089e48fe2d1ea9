"""Live queries: a query's result pushed to its subscribers whenever a commit changes it.

One ``LiveQueries`` hub per service and process listens to the read store's commit notices
(``bicameral.commits``); nothing polls per subscriber. Subscribers of the same query, with the
same parameters, by the same principal, share one group, run once per notice: a notice that
names a checkpoint of a projection the query reads (or ``EVERYTHING``) runs each such group's
query again, at most one run at a time per group (notices arriving meanwhile make one more
run). Each subscriber has a slot holding only the latest result it has not taken yet: a slow
reader skips intermediate results, and never holds back the projector, the group or the
other subscribers. A subscriber is offered a result only when it differs from the last one it
took.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from bicameral.bus.queries import QueryBus
from bicameral.commits import EVERYTHING, Commits, Listener
from bicameral.consistency import Notifier
from bicameral.context import MessageContext
from bicameral.errors import BicameralError
from bicameral.messages import Query
from bicameral.workers.retry import TRANSIENT

__all__ = ["READY_TIMEOUT", "LiveQueries", "LiveQuery", "Refused", "in_process"]

log = logging.getLogger("bicameral.workers.live")

_NOTHING: Any = object()
READY_TIMEOUT = 5.0
"""Seconds a subscription waits for the store's commit notices to be heard (else 503)."""
_FIRST_PAUSE = 0.1
_MAX_PAUSE = 5.0


@dataclass(frozen=True)
class Refused:
    """What a subscriber gets instead of a result when the query, run again, raises (the
    record it names was deleted, say); a later result may follow."""

    kind: str
    detail: str
    error: BicameralError = field(compare=False)


class LiveQuery:
    """One subscriber: the latest result it has not taken yet (intermediate ones dropped)."""

    def __init__(self, group: _Group) -> None:
        self._group = group
        self._latest: Any = _NOTHING
        self._taken: Any = _NOTHING
        self._seen = -1
        self._ready = asyncio.Event()
        self._closed = False

    def offer(self, result: Any, seen: int) -> None:
        """Keeps ``result`` (read after ``seen`` notices) unless a later read is kept."""
        if seen < self._seen:
            return
        self._seen, self._latest = seen, result
        if result == self._taken:
            self._ready.clear()
        else:
            self._ready.set()

    async def next(self) -> Any:
        """Returns the latest result unlike the one taken before, waiting for one."""
        await self._ready.wait()
        self._ready.clear()
        self._taken = self._latest
        return self._taken

    async def close(self) -> None:
        """Stops receiving results (again: nothing)."""
        if not self._closed:
            self._closed = True
            await self._group.leave(self)


class _Group:
    """The subscribers of one query, parameters and principal, and the query's runs."""

    def __init__(self, hub: LiveQueries, key: Any, query: Query, context: MessageContext) -> None:
        self.hub = hub
        self.key = key
        self.query = query
        self.context = context
        self.slots: set[LiveQuery] = set()
        self.prefixes = hub.prefixes(query)
        self._task: asyncio.Task[None] | None = None
        self._again = False

    def touched(self, names: frozenset[str]) -> bool:
        """Returns True when a notice of ``names`` may change this query's result."""
        return EVERYTHING in names or any(n.startswith(self.prefixes) for n in names)

    def refresh(self) -> None:
        """Runs the query again now, or once more after the run under way."""
        if self._task is not None and not self._task.done():
            self._again = True
        else:
            self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        pause = _FIRST_PAUSE
        while True:
            self._again = False
            seen = self.hub.seen
            try:
                result: Any = await self.hub.bus.ask(self.query, self.context)
            except TRANSIENT as exc:
                log.warning("live %s: run failed (%s); again in %gs", self.key[0], exc, pause)
                await asyncio.sleep(pause)
                pause, self._again = min(pause * 2, _MAX_PAUSE), True
            except BicameralError as exc:
                self._offer(Refused(type(exc).__name__, exc.detail, exc), seen)
            else:
                pause = _FIRST_PAUSE
                self._offer(result, seen)
            if not self._again:
                return

    def _offer(self, result: Any, seen: int) -> None:
        for slot in list(self.slots):
            slot.offer(result, seen)

    async def leave(self, slot: LiveQuery) -> None:
        self.slots.discard(slot)
        if not self.slots:
            task, self._task = self._task, None
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self.hub.drop(self)


class LiveQueries:
    """The live queries of one service in this process, woken by ``commits``."""

    def __init__(self, bus: QueryBus, commits: Commits) -> None:
        self.bus = bus
        self.commits = commits
        self.seen = 0
        """How many notices this hub has had (results read after more notices win)."""
        self._groups: dict[Any, _Group] = {}
        self._listener: Listener | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def subscribers(self) -> int:
        """Returns how many subscriptions are open."""
        return sum(len(g.slots) for g in self._groups.values())

    @property
    def groups(self) -> int:
        """Returns how many distinct (query, parameters, principal) are live."""
        return len(self._groups)

    def prefixes(self, query: Query) -> tuple[str, ...]:
        """Returns the prefixes of the checkpoints whose moves may change ``query``'s result."""
        handler = self.bus.service.queries.get(query.message_name)
        if handler is None or handler.query is not type(query):
            raise BicameralError(f"{self.bus.service.name} has no handler for {query}")
        names = [p.name for p in self.bus.service.reads_of(handler)]
        return tuple(f"{name}{mark}" for name in names for mark in (".v", "#"))

    async def subscribe(self, query: Query, context: MessageContext) -> LiveQuery:
        """Returns a subscription whose first result is the query's answer now.

        The query runs through the bus, so its policy applies as for ``ask``, once commits
        are heard (BackendError after ``READY_TIMEOUT`` seconds); errors propagate and
        nothing stays subscribed.
        """
        key = (query.message_name, query.model_dump_json(), context.principal)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(self, key, query, context)
        slot = LiveQuery(group)
        group.slots.add(slot)
        self._listen()
        seen = self.seen
        try:
            await self.commits.ready(READY_TIMEOUT)
            result = await self.bus.ask(query, context)
        except BaseException:
            await slot.close()
            raise
        slot.offer(result, seen)
        return slot

    def _listen(self) -> None:
        if self._task is None:
            self._listener = self.commits.listen()
            self._task = asyncio.create_task(self._wake(self._listener))

    async def _wake(self, listener: Listener) -> None:
        while True:
            names = await listener.next()
            self.seen += 1
            for group in list(self._groups.values()):
                if group.touched(names):
                    group.refresh()

    async def drop(self, group: _Group) -> None:
        """Forgets an empty group; stops listening after the last one."""
        if self._groups.get(group.key) is group:
            del self._groups[group.key]
        if not self._groups:
            await self.close()

    async def close(self) -> None:
        """Stops listening (subscriptions left open get nothing more)."""
        task, self._task = self._task, None
        listener, self._listener = self._listener, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if listener is not None:
            await listener.close()


def in_process(notifier: Notifier) -> Commits:
    """Returns commit notices for a read store with no change feed: ``EVERYTHING`` whenever
    ``notifier`` wakes (this process's commits only)."""

    async def watch(commits: Commits) -> None:
        commits.connected()
        while True:
            await notifier.mark().wait()
            commits.publish({EVERYTHING})

    return Commits(watch, name="in-process commits")
