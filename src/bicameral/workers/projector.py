"""The Projector: runs one projection over one source's feed, in batches, exactly once.

Each batch is folded into a View and committed with the checkpoint in one atomic step that
also checks the checkpoint did not move meanwhile. A restart resumes after the checkpoint; a
redelivered event is at or below it and changes nothing; two projectors racing on the same
checkpoint cannot both commit a batch.

A projector given ``accepts`` (one partition of a shared projection, see
``bicameral.workers.partitions``) folds only the events it accepts but moves its own checkpoint over
every event it reads, so a partition with no events of its own still keeps up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from bicameral import metrics
from bicameral.consistency import Notifier
from bicameral.envelope import Envelope
from bicameral.errors import BicameralError
from bicameral.ports import ReadStore
from bicameral.projection import Projection, View
from bicameral.workers.feeds import Feed
from bicameral.workers.meters import Meter

__all__ = ["Projector"]

log = logging.getLogger("bicameral.workers.projector")


class Projector:
    """Folds ``feed`` into ``store`` through ``projection``."""

    def __init__(
        self,
        projection: Projection,
        feed: Feed,
        store: ReadStore,
        *,
        batch_size: int = 500,
        notifier: Notifier | None = None,
        checkpoint: str | None = None,
        accepts: Callable[[Envelope], bool] | None = None,
    ) -> None:
        self.projection = projection
        self.feed = feed
        self.store = store
        self.batch_size = batch_size
        self.notifier = notifier
        self.checkpoint_name = checkpoint or projection.checkpoint(feed.source)
        self.accepts = accepts
        self.meter = Meter("", self.checkpoint_name)
        """Where this projector stands, for ``/metrics`` (the runtime names and registers it)."""

    async def prepare(self) -> None:
        """Declares the projection's collections and indexes in the read store."""
        for collection, indexes in self.projection.collections.items():
            await self.store.declare(self.projection.table(collection), indexes)

    async def step(self, timeout: float = 1.0) -> int:
        """Folds the next batch, if any; returns how many events its checkpoint moved over."""
        try:
            return await self._step(timeout)
        except Exception as exc:
            self.meter.failed(exc)
            raise

    async def _step(self, timeout: float) -> int:
        name = self.checkpoint_name
        after = await self.store.checkpoint(name)
        self.meter.at(after)
        batch = [
            e for e in await self.feed.fetch(after, self.batch_size, timeout) if e.position > after
        ]
        self.meter.fetched(batch)
        if not batch:
            return 0
        mine = batch if self.accepts is None else [e for e in batch if self.accepts(e)]
        view = View(self.projection, self.store)
        await self.projection.fold(mine, view)
        if not await self.store.commit(name, after, batch[-1].position, view.changes):
            log.info("%s: checkpoint moved by another projector; re-reading", name)
            return 0
        self.meter.handled(batch[-1].position)
        await self.feed.ack(batch)
        metrics.PROJECTED_EVENTS.labels(self.projection.name).inc(len(mine))
        if self.notifier is not None:
            self.notifier.notify()
        return len(batch)

    async def run(self, stop: asyncio.Event) -> None:
        """Folds batches until ``stop`` is set; backs off and retries on backend errors."""
        await self.prepare()
        while not stop.is_set():
            try:
                await self.step(timeout=0.5)
            except BicameralError as exc:
                log.warning("%s: %s; retrying", self.checkpoint_name, exc)
                await asyncio.sleep(1.0)

    async def catch_up(self) -> int:
        """Folds until the feed has nothing more right now; returns the events committed."""
        await self.prepare()
        total = 0
        while count := await self.step(timeout=0.0):
            total += count
        return total
