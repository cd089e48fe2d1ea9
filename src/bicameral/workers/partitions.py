"""Partitions: several projector processes sharing one service's projections.

Each event of a projection belongs to one of ``count`` partitions, by a stable hash (CRC-32) of
its partition key (the stream id unless the projection says otherwise), so one partition holds
all of a stream's events and folds them in order. Partition ``i`` of checkpoint ``c`` keeps its
own checkpoint ``c#p<i>`` (just ``c`` when ``count`` is 1), moved over every event it reads so
that a partition without events of its own never holds the projection back. A projection has
passed position ``p`` once every one of its partition checkpoints has.

Which process folds which partition is agreed through the read store's leases. Every
``ProjectorGroup`` renews a membership lease ``members/<group>/<worker>`` on each heartbeat,
lists the live members, sorted, and takes partition ``i`` when it is ``members[i % n]``: it
folds a partition only while it holds that partition's lease, and gives up the partitions
no longer assigned to it. A worker that joins changes the assignment at everyone's next
heartbeat; one that dies stops renewing, its leases expire, and the others take its partitions.
Two workers that both believe they own a partition for a moment still cannot apply an event
twice: every commit is a compare-and-set of the partition checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bicameral.consistency import Notifier
from bicameral.envelope import Envelope
from bicameral.errors import BicameralError, ConfigurationError
from bicameral.ports import ReadStore
from bicameral.projection import Projection, partition_checkpoints, projection_position
from bicameral.workers.feeds import Feed, LogFeed
from bicameral.workers.projector import Projector
from bicameral.workers.retry import TRANSIENT, Backoff, pause, retrying

__all__ = [
    "FeedFactory",
    "ProjectorGroup",
    "assigned",
    "partition_checkpoints",
    "partition_of",
    "projection_position",
    "worker_id",
]

log = logging.getLogger("bicameral.workers.partitions")

FeedFactory = Callable[[str, str], Feed]
"""Returns the feed of a source service's events for a named consumer: ``(source, consumer)``."""


def partition_of(key: str, count: int) -> int:
    """Returns the partition (0 to ``count - 1``) of a partition key; the same in every process."""
    return zlib.crc32(key.encode()) % count


def assigned(worker: str, members: Sequence[str], count: int) -> set[int]:
    """Returns the partitions ``worker`` should own among ``members`` (itself counted in)."""
    live = sorted({*members, worker})
    return {i for i in range(count) if live[i % len(live)] == worker}


def worker_id() -> str:
    """Returns a name for this worker, unique across hosts and restarts."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class _CachedFeed:
    """A log feed shared by the partitions of one lane, read once per round for all of them.

    The log never changes below what a reader has seen, so the batch read above position ``a``
    also answers a read above any later position ``b`` up to that batch's end (or, for an empty
    batch, any ``b`` from ``a`` on) until ``forget`` starts the next round.
    """

    def __init__(self, feed: Feed) -> None:
        self.source = feed.source
        self._feed = feed
        self._after = 0
        self._batch: list[Envelope] | None = None

    def forget(self) -> None:
        """Starts a new round: the next fetch reads the log again."""
        self._batch = None

    async def fetch(self, after: int, limit: int, timeout: float) -> list[Envelope]:
        """Returns events above ``after``: from this round's batch if it covers them."""
        batch = self._batch
        if batch is not None and self._after <= after and (not batch or after < batch[-1].position):
            return [e for e in batch if e.position > after][:limit]
        self._batch = await self._feed.fetch(after, limit, timeout)
        self._after = after
        return self._batch

    async def ack(self, envelopes: Sequence[Envelope]) -> None:
        """Does nothing: a log reader's checkpoint is its acknowledgement."""

    async def close(self) -> None:
        """Forgets the round's batch."""
        self.forget()


@dataclass
class _Slot:
    """One partition of one projection and source, with its projector and lease.

    The heartbeat decides ``owned``; the slot's lane acts on it between batches, so a lease
    is given up only after the lane stopped folding the partition.
    """

    index: int
    lease: str
    projector: Projector
    owned: bool = False
    leased: bool = False
    active: bool = False


class ProjectorGroup:
    """Folds the partitions of ``projections`` this worker owns; one per service and process.

    Each projection and source is a lane (a task in ``run``) that folds its owned partitions
    in turn and waits on its feed when they are all caught up.
    """

    def __init__(
        self,
        group: str,
        store: ReadStore,
        projections: Sequence[tuple[Projection, str]],
        feed: FeedFactory,
        *,
        partitions: int = 8,
        ttl: float = 10.0,
        worker: str | None = None,
        notifier: Notifier | None = None,
        batch_size: int = 500,
        service: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if partitions < 1:
            raise ConfigurationError("partitions must be at least 1")
        self.group = group
        self.store = store
        self.partitions = partitions
        self.ttl = ttl
        self.worker = worker or worker_id()
        self.projections = list(dict.fromkeys(projection for projection, _ in projections))
        self.lanes: dict[str, list[_Slot]] = {}
        for projection, source in projections:
            base = projection.checkpoint(source)
            names = partition_checkpoints(base, partitions)
            feeds = _partition_feeds(
                feed, source, f"{projection.name}.v{projection.version}", base, names
            )
            lane = self.lanes.setdefault(base, [])
            for index, (name, own) in enumerate(zip(names, feeds, strict=True)):
                projector = Projector(
                    projection,
                    own,
                    store,
                    batch_size=batch_size,
                    notifier=notifier,
                    checkpoint=name,
                    accepts=None if partitions == 1 else _accepts(projection, index, partitions),
                    service=service,
                    consumer=base,
                )
                lane.append(_Slot(index, f"partitions/{group}/{name}", projector))
        self._clock = clock
        self._renewed = -float("inf")

    @property
    def slots(self) -> list[_Slot]:
        """Returns every partition slot of every lane."""
        return [slot for lane in self.lanes.values() for slot in lane]

    @property
    def member_lease(self) -> str:
        """Returns the name of this worker's membership lease."""
        return f"members/{self.group}/{self.worker}"

    @property
    def owned(self) -> list[str]:
        """Returns the checkpoints of the partitions this worker holds now."""
        return [slot.projector.checkpoint_name for slot in self.slots if slot.owned]

    async def prepare(self) -> None:
        """Declares the read models; refuses checkpoints made with another partition count.

        The count is recorded beside each projection's checkpoints (``<checkpoint>#n``), since
        folding on with another one would apply events again.
        """
        for projection in self.projections:
            for collection, indexes in projection.collections.items():
                await self.store.declare(projection.table(collection), indexes)
        expected = {slot.projector.checkpoint_name for slot in self.slots}
        found = await self.store.checkpoints()
        stray = sorted(
            name for name in found if name.partition("#p")[0] in self.lanes and name not in expected
        )
        for base in self.lanes:
            marker = f"{base}#n"
            if found.get(marker, 0) == 0 and not await self.store.commit(
                marker, 0, self.partitions, {}
            ):
                found[marker] = await self.store.checkpoint(marker)
            if found.get(marker, self.partitions) != self.partitions:
                stray.append(f"{marker}={found[marker]}")
        if stray:
            raise ConfigurationError(
                f"read store holds checkpoints {stray} of another partition count than "
                f"partitions = {self.partitions}; keep the old count or rebuild the projection "
                "as a new version"
            )

    async def members(self) -> list[str]:
        """Returns the live workers of this group, sorted."""
        return sorted(set((await self.store.leases(f"members/{self.group}/")).values()))

    async def heartbeat(self) -> None:
        """Renews this worker's membership and takes (or renews) the partitions assigned to it.

        Partitions no longer assigned, or whose lease another worker took, are marked to be
        given up by their lane.
        """
        renewed = self._clock()  # before the round trips: a lease may run from the request on
        await self.store.acquire_lease(self.member_lease, self.worker, self.ttl)
        mine = assigned(self.worker, await self.members(), self.partitions)
        before = set(self.owned)
        for slot in self.slots:
            slot.owned = slot.index in mine and await self.store.acquire_lease(
                slot.lease, self.worker, self.ttl
            )
            slot.leased = slot.leased or slot.owned
        self._renewed = renewed
        after = set(self.owned)
        if after != before:
            log.info(
                "%s: %s now folds %s (took %s, gave up %s)",
                self.group,
                self.worker,
                sorted(after),
                sorted(after - before),
                sorted(before - after),
            )

    @property
    def lease_deadline(self) -> float:
        """Returns when (by ``clock``) the leases may run out unless renewed before."""
        return self._renewed + self.ttl

    def _expire(self) -> None:
        """Stops folding every partition once the leases may have run out unrenewed."""
        if self._clock() > self.lease_deadline:
            for slot in self.slots:
                slot.owned = False

    async def _settle(self, lane: Sequence[_Slot]) -> list[_Slot]:
        """Gives up the lane's partitions no longer owned; returns the ones to fold."""
        for slot in lane:
            if not slot.owned and (slot.active or slot.leased):
                slot.active = slot.leased = False
                slot.projector.meter.release()
                await slot.projector.feed.close()
                await self.store.release_lease(slot.lease, self.worker)
            if slot.owned and not slot.active:
                slot.projector.forget_parked()  # another worker may have parked meanwhile
            slot.active = slot.owned
        return [slot for slot in lane if slot.active]

    async def _step_lane(self, lane: Sequence[_Slot], timeout: float) -> int:
        active = await self._settle(lane)
        _new_round(lane)
        total = 0
        for slot in active:
            total += await slot.projector.step(timeout=0.0)
        if not total and active and timeout > 0:
            _new_round(lane)
            total = await active[0].projector.step(timeout=timeout)
        return total

    async def step(self) -> int:
        """Folds one batch of every owned partition; returns how many events they moved over."""
        total = 0
        for lane in self.lanes.values():
            total += await self._step_lane(lane, 0.0)
        return total

    async def leave(self) -> None:
        """Gives up every partition and the membership, so the others take over at once."""
        for slot in self.slots:
            slot.owned = False
        for lane in self.lanes.values():
            await self._settle(lane)
        await self.store.release_lease(self.member_lease, self.worker)

    async def _beat(self, stop: asyncio.Event) -> None:
        backoff = Backoff(cap=self.ttl / 3)
        wait = self.ttl / 3
        while not stop.is_set():
            await pause(wait, stop)
            if stop.is_set():
                return
            wait = self.ttl / 3
            try:
                await self.heartbeat()
                backoff.reset()
            except TRANSIENT as exc:
                self._expire()
                wait = backoff.delay()
                log.warning("%s: heartbeat failed: %s; retrying in %.1fs", self.group, exc, wait)

    async def _run_lane(self, lane: Sequence[_Slot], stop: asyncio.Event) -> None:
        async def turn() -> None:
            self._expire()
            if not await self._step_lane(lane, 0.5) and not any(s.active for s in lane):
                await pause(0.5, stop)

        await retrying(turn, stop, name=lane[0].projector.checkpoint_name, logger=log)

    async def run(self, stop: asyncio.Event) -> None:
        """Heartbeats and folds until ``stop`` is set, then leaves the group."""
        await self.prepare()
        try:
            await self.heartbeat()
            async with asyncio.TaskGroup() as tasks:  # one failing cancels the others
                tasks.create_task(self._beat(stop))
                for lane in self.lanes.values():
                    tasks.create_task(self._run_lane(lane, stop))
        finally:
            with contextlib.suppress(BicameralError):
                await self.leave()

    async def catch_up(self) -> int:
        """Joins, then folds every owned partition until nothing is left; returns the events."""
        await self.prepare()
        await self.heartbeat()
        total = 0
        while count := await self.step():
            total += count
        return total

    def __repr__(self) -> str:
        return f"ProjectorGroup({self.group!r}, worker={self.worker!r})"


def _new_round(lane: Sequence[_Slot]) -> None:
    for slot in lane:
        if isinstance(slot.projector.feed, _CachedFeed):
            slot.projector.feed.forget()


def _partition_feeds(
    feed: FeedFactory, source: str, consumer: str, base: str, names: Sequence[str]
) -> list[Feed]:
    """Returns each partition's feed: one log read shared by all, or a transport consumer each."""
    first = feed(source, consumer)
    if len(names) == 1:
        return [first]
    if isinstance(first, LogFeed):
        return [_CachedFeed(first)] * len(names)
    return [feed(source, consumer + name[len(base) :]) for name in names]


def _accepts(projection: Projection, index: int, count: int) -> Callable[[Envelope], bool]:
    def accepts(envelope: Envelope) -> bool:
        return partition_of(projection.partition_key(envelope), count) == index

    return accepts
