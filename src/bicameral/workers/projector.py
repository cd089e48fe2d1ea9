"""The Projector: runs one projection over one source's feed, in batches, exactly once.

Each batch is folded into a View and committed with the checkpoint in one atomic step that
also checks the checkpoint did not move meanwhile. A restart resumes after the checkpoint; a
redelivered event is at or below it and changes nothing; two projectors racing on the same
checkpoint cannot both commit a batch.

A projector given ``select`` (one partition of a shared projection, see
``bicameral.workers.partitions``) folds only the events it selects but moves its own checkpoint over
every event it reads, so a partition with no events of its own still keeps up.

After a commit the projector knows its checkpoint and reads it from the store again only when
a commit is refused, a step fails, or it takes a partition (back) over: a checkpoint another
copy moved meanwhile is caught by the commit's check.

A batch with nothing for this projector to fold (another partition's events, or types the
projection does not handle) is passed over without a commit of its own: the checkpoint moves
over it with the next batch that folds something, when the feed has nothing more, or
``defer`` seconds after the first such batch, whichever comes first. So a partition of eight
commits about once per round of its lane rather than once per batch, and a checkpoint is never
behind the head for longer than ``defer`` once events stop coming. Until that commit the events
passed over are not acknowledged to the feed: a crash reads them again.

Failures: a transient one (``workers.retry.TRANSIENT``) fails the step, to be retried whole. Any
other exception, from a handler, from decoding an event or from storing a document, is poison:
the batch is folded again event by event, the failing event is tried ``projection.retries``
more times, then parked, and every later event of its partition key parks behind it, in the
same commit that moves the checkpoint (see ``bicameral.parking``); other keys go on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from bicameral import metrics, tracing
from bicameral.consistency import Notifier
from bicameral.envelope import Envelope
from bicameral.parking import Failure, Park
from bicameral.ports import ReadStore
from bicameral.projection import Projection, View
from bicameral.workers.feeds import Feed
from bicameral.workers.meters import Meter
from bicameral.workers.retry import TRANSIENT, retrying

__all__ = ["Projector", "Select"]

Select = Callable[[Sequence[Envelope]], list[Envelope]]
"""Returns the events of a batch a projector folds, in order (a subset of those it handles)."""

log = logging.getLogger("bicameral.workers.projector")


class Projector:
    """Folds ``feed`` into ``store`` through ``projection``.

    ``select`` picks the events of each batch it folds (by default every one its projection
    handles). ``consumer`` names it among parked events (by default its checkpoint's name; the
    partitions of one projection share their projection's), ``service`` the service it serves.
    """

    def __init__(
        self,
        projection: Projection,
        feed: Feed,
        store: ReadStore,
        *,
        batch_size: int = 500,
        notifier: Notifier | None = None,
        checkpoint: str | None = None,
        select: Select | None = None,
        service: str = "",
        consumer: str | None = None,
        retry_delay: float = 0.1,
        defer: float = 0.1,
    ) -> None:
        self.projection = projection
        self.feed = feed
        self.store = store
        self.batch_size = batch_size
        self.notifier = notifier
        self.checkpoint_name = checkpoint or projection.checkpoint(feed.source)
        self.select = select or self._handled
        self.meter = Meter("", self.checkpoint_name)
        """Where this projector stands, for ``/metrics`` (the runtime names and registers it)."""
        self.service = service
        self.consumer = consumer or projection.checkpoint(feed.source)
        self.retry_delay = retry_delay
        self._parked: set[str] | None = None
        self.defer = defer
        self._known: int | None = None
        self._passed: list[Envelope] = []
        """Events read since the last commit with nothing to fold, not yet committed past."""
        self._passed_since = 0.0

    async def prepare(self) -> None:
        """Declares the projection's collections and indexes in the read store."""
        for collection, indexes in self.projection.collections.items():
            await self.store.declare(self.projection.table(collection), indexes)

    def forget_parked(self) -> None:
        """Reads the parked keys and the checkpoint again before the next batch (another copy
        may have parked or moved it)."""
        self._parked = None
        self._forget()

    def _forget(self) -> None:
        """Reads the checkpoint from the store before the next batch, and forgets the events
        passed over since (they are read again)."""
        self._known = None
        self._passed = []

    async def step(self, timeout: float = 1.0) -> int:
        """Folds the next batch, if any; returns how many events its checkpoint moved over.

        A commit refused because the checkpoint or the parked sequences moved meanwhile (another
        copy, a retry, a skip) is made again from what the store holds now, a few times.
        """
        try:
            for _ in range(3):
                moved = await self._step(timeout)
                if moved is not None:
                    return moved
                timeout = 0.0
        except Exception as exc:
            self._forget()
            self.meter.failed(exc)
            raise
        return 0

    async def _step(self, timeout: float) -> int | None:
        name = self.checkpoint_name
        if self._known is None:
            self._known = await self.store.checkpoint(name)
        after = self._known
        passed = self._passed
        read_from = passed[-1].position if passed else after
        self.meter.at(read_from)
        got = await self.feed.fetch(read_from, self.batch_size, 0.0 if passed else timeout)
        fresh = (
            got
            if not got or got[0].position > read_from
            else [e for e in got if e.position > read_from]
        )
        self.meter.fetched(fresh)
        if not fresh and not passed:
            return 0
        mine = self.select(fresh)
        if fresh and not mine and self._may_pass():
            self._passed = [*passed, *fresh]
            self.meter.handled(fresh[-1].position)
            return len(fresh)
        batch = [*passed, *fresh]
        if mine and tracing.enabled():
            committed = await self._traced(after, batch, mine)
        else:
            committed = await self._fold(after, batch, mine)
        if not committed:
            self._parked = None
            self._forget()
            log.info("%s: checkpoint or parked events moved meanwhile; re-reading", name)
            return None
        self._known = batch[-1].position
        self._passed = []
        self.meter.handled(batch[-1].position)
        await self.feed.ack(batch)
        metrics.PROJECTED_EVENTS.labels(self.projection.name).inc(len(mine))
        if self.notifier is not None:
            self.notifier.notify()
        return len(fresh)

    def _handled(self, fresh: Sequence[Envelope]) -> list[Envelope]:
        """Returns the events of ``fresh`` the projection has a handler for."""
        handlers = self.projection.handlers
        return [e for e in fresh if e.type in handlers]

    def _may_pass(self) -> bool:
        """Returns whether a batch with nothing to fold may wait for a later commit."""
        if self.defer <= 0:
            return False
        now = time.monotonic()
        if not self._passed:
            self._passed_since = now
        return now - self._passed_since < self.defer

    async def _fold(self, after: int, batch: list[Envelope], mine: list[Envelope]) -> bool:
        """Folds and commits the batch, parking what is poison; False when the checkpoint or
        the parked sequences moved meanwhile."""
        if self._parked is None:
            self._parked = await self.store.parked_keys(self.consumer)
        parked = self._parked
        key = self.projection.partition_key
        committed: bool | None = None
        if not parked or not any(key(e) in parked for e in mine):
            committed = await self._whole(after, batch, mine)
        if committed is None:
            committed = await self._careful(after, batch, mine, parked)
        return committed

    async def _traced(self, after: int, batch: list[Envelope], mine: list[Envelope]) -> bool:
        """``_fold`` in a span ``project <checkpoint>``, linked to the traces of its events."""
        with tracing.span(
            f"project {self.checkpoint_name}",
            kind=tracing.SpanKind.CONSUMER,
            links=tracing.links_to(e.metadata for e in mine),
            attributes={
                "bicameral.service": self.service,
                "bicameral.projection": self.projection.name,
                "bicameral.events": len(mine),
                "bicameral.position": batch[-1].position,
            },
        ) as span:
            committed = await self._fold(after, batch, mine)
            span.set_attribute("bicameral.committed", committed)
            return committed

    async def _whole(self, after: int, batch: list[Envelope], mine: list[Envelope]) -> bool | None:
        """Folds and commits the batch at once; None when something in it is poison."""
        view = View(self.projection, self.store)
        try:
            await self.projection.fold(mine, view)
            return await self.store.commit(
                self.checkpoint_name, after, batch[-1].position, view.changes
            )
        except Exception as exc:
            if isinstance(exc, TRANSIENT):
                raise
            return None

    async def _careful(
        self, after: int, batch: list[Envelope], mine: list[Envelope], parked: set[str]
    ) -> bool:
        """Folds the batch event by event, parking what fails and what follows it; commits once.

        If the commit itself is refused as poison (a document the store cannot hold), commits
        event by event instead, so only the event whose document fails is parked.
        """
        blocked = set(parked)
        view = View(self.projection, self.store)
        try:
            await self.projection.prefetch([e for e in mine if self._key(e) not in blocked], view)
        except Exception as exc:
            if isinstance(exc, TRANSIENT):
                raise
        parks: list[Park] = []
        for env in mine:
            key = self._key(env)
            if key in blocked:
                parks.append(Park(self.service, self.consumer, key, env))
                continue
            failure = await self._attempt(env, view)
            if failure is not None:
                parks.append(self._open(key, env, failure))
                blocked.add(key)
        try:
            done = await self.store.commit(
                self.checkpoint_name, after, batch[-1].position, view.changes, parks
            )
        except Exception as exc:
            if isinstance(exc, TRANSIENT):
                raise
            return await self._one_by_one(after, batch, mine, set(parked))
        self._note(parks, done)
        return done

    async def _one_by_one(
        self, after: int, batch: list[Envelope], mine: list[Envelope], blocked: set[str]
    ) -> bool:
        """Commits each event of the batch on its own, parking what fails, handler or store."""
        name, prev = self.checkpoint_name, after
        for env in mine:
            key = self._key(env)
            if key in blocked:
                parks = [Park(self.service, self.consumer, key, env)]
                done = await self.store.commit(name, prev, env.position, {}, parks)
            else:
                failure = None
                for attempt in range(self.projection.retries + 1):
                    view = View(self.projection, self.store)
                    try:
                        await self.projection.apply(env, view)
                        done = await self.store.commit(name, prev, env.position, view.changes)
                        break
                    except Exception as exc:
                        if isinstance(exc, TRANSIENT):
                            raise
                        self.meter.failed(exc)
                        failure = Failure.of(exc, attempt + 1)
                        await self._pause(attempt)
                else:
                    assert failure is not None
                    parks = [self._open(key, env, failure)]
                    done = await self.store.commit(name, prev, env.position, {}, parks)
                    blocked.add(key)
                    self._note(parks, done)
            if not done:
                return False
            prev = env.position
        if prev != batch[-1].position:
            return await self.store.commit(name, prev, batch[-1].position, {})
        return True

    async def _attempt(self, env: Envelope, view: View) -> Failure | None:
        """Applies ``env`` to ``view``, tried up to 1 + retries times; returns the last failure."""
        failure = None
        for attempt in range(self.projection.retries + 1):
            mark = view.savepoint()
            try:
                await self.projection.apply(env, view)
                return None
            except Exception as exc:
                if isinstance(exc, TRANSIENT):
                    raise
                view.rollback(mark)
                self.meter.failed(exc)
                failure = Failure.of(exc, attempt + 1)
                await self._pause(attempt)
        return failure

    async def _pause(self, attempt: int) -> None:
        if attempt < self.projection.retries and self.retry_delay > 0:
            await asyncio.sleep(self.retry_delay * 2**attempt)

    def _key(self, env: Envelope) -> str:
        return self.projection.partition_key(env)

    def _open(self, key: str, env: Envelope, failure: Failure) -> Park:
        log.error(
            "%s: parked event %s (%s, position %d) of %r after %d attempts: %s: %s; later events "
            "of %r park behind it until `bicameral dlq retry` or `skip`\n%s",
            self.consumer,
            env.id,
            env.type,
            env.position,
            key,
            failure.attempts,
            failure.error,
            failure.message,
            key,
            failure.traceback,
        )
        return Park(self.service, self.consumer, key, env, failure)

    def _note(self, parks: Sequence[Park], done: bool) -> None:
        if done and parks:
            metrics.PARKED_EVENTS.labels(self.consumer).inc(len(parks))
            if self._parked is not None:
                self._parked.update(p.key for p in parks)

    async def run(self, stop: asyncio.Event) -> None:
        """Folds batches until ``stop`` is set; backs off and retries on transient failures."""
        await self.prepare()
        await retrying(lambda: self.step(timeout=0.5), stop, name=self.checkpoint_name, logger=log)

    async def catch_up(self) -> int:
        """Folds until the feed has nothing more right now; returns the events committed."""
        await self.prepare()
        total = 0
        while count := await self.step(timeout=0.0):
            total += count
        return total
