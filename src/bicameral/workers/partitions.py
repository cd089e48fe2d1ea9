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

A group folds every stored version of a projection that needs it (see ``bicameral.versions``):
the live one, and one being built beside it from position 0 through its own partition
checkpoints. Each heartbeat reads the versions again, so a rebuild started elsewhere is picked
up, and a version that went live or retired is given up. A building version whose partitions
have all caught up is switched live by whichever worker notices; one whose handler raises is
marked failed, and the live version goes on.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import os
import socket
import time
import uuid
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from bicameral import versions
from bicameral.consistency import Notifier
from bicameral.envelope import Envelope
from bicameral.errors import BicameralError, ConfigurationError
from bicameral.ports import ReadStore
from bicameral.projection import Projection, partition_checkpoints, projection_position
from bicameral.versions import Catalog
from bicameral.workers.feeds import Feed, LogFeed
from bicameral.workers.projector import Projector, Select
from bicameral.workers.retry import TRANSIENT, Backoff, pause, retrying
from bicameral.workers.shared import SharedRead, WindowFeed

__all__ = [
    "Equip",
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
Head = Callable[[str], Awaitable[int]]
"""Returns the head of a source service's log, as its feed will reach it."""
Equip = Callable[[Projector, str, int, int], None]
"""Fits out each partition's projector as it is made: ``(projector, base checkpoint, partition
count, index)`` (the runtime gives it its meter)."""
_SWITCH_EVERY = 0.5
_KNOWN = 16_384


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
    batch, any ``b`` from ``a`` on) until ``forget`` starts the next round. A read above ``a``
    itself gets the very batch (the partitions read it, never change it), so ``_Split`` knows
    it again.
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
            if after == self._after and len(batch) <= limit:
                return batch
            start = bisect.bisect_right(batch, after, key=_position)
            return batch[start : start + limit]
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
    """One partition of one version of a projection and source, with its projector and lease.

    The heartbeat decides ``owned``; the slot's lane acts on it between batches, so a lease
    is given up only after the lane stopped folding the partition. A slot whose version no
    longer needs folding is ``dropped`` and leaves its lane once given up.
    """

    index: int
    lease: str
    projector: Projector
    number: int = 0
    building: bool = False
    owned: bool = False
    leased: bool = False
    active: bool = False
    dropped: bool = False


@dataclass
class _Lane:
    """The slots of one projection and source, across its versions: one task folds them all."""

    projection: Projection
    source: str
    slots: list[_Slot] = field(default_factory=list)

    def numbers(self) -> set[int]:
        """Returns the versions the lane folds (or is giving up)."""
        return {slot.number for slot in self.slots}


class ProjectorGroup:
    """Folds the partitions of ``projections`` this worker owns; one per service and process.

    Each projection and source is a lane (a task in ``run``) that folds its owned partitions of
    every version in turn (the live one first) and waits on its feed when they are all caught
    up. ``head`` lets it switch a built version live; ``builds_only`` folds only versions being
    built (``bicameral projections rebuild`` with no worker running).
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
        head: Head | None = None,
        builds_only: bool = False,
        service: str = "",
        clock: Callable[[], float] = time.monotonic,
        equip: Equip | None = None,
    ) -> None:
        if partitions < 1:
            raise ConfigurationError("partitions must be at least 1")
        self.group = group
        self.store = store
        self.partitions = partitions
        self.ttl = ttl
        self.worker = worker or worker_id()
        self.notifier = notifier
        self.batch_size = batch_size
        self.head = head
        self.builds_only = builds_only
        self.service = service
        self.equip = equip
        self._clock = clock
        self._feed = feed
        self.projections = list(dict.fromkeys(projection for projection, _ in projections))
        self.sources: dict[str, list[str]] = {}
        self._lanes: list[_Lane] = []
        for projection, source in projections:
            self.sources.setdefault(projection.name, []).append(source)
            lane = _Lane(projection, source)
            self._lanes.append(lane)
            if not builds_only:
                lane.slots += self._slots(projection, source, projection.version, building=False)
        self._renewed = -float("inf")
        self._checked: dict[tuple[str, int], float] = {}
        self._counted: set[str] = set()
        self.failures: dict[tuple[str, int], BaseException] = {}
        """Why a version this worker was building failed, by (projection, version)."""

    def _slots(
        self, projection: Projection, source: str, number: int, *, building: bool
    ) -> list[_Slot]:
        """Returns the slots of version ``number`` of ``projection`` over ``source``."""
        stored = projection.at(number)
        base = stored.checkpoint(source)
        names = partition_checkpoints(base, self.partitions)
        feeds = _partition_feeds(self._feed, source, f"{projection.name}.v{number}", base, names)
        slots = []
        count = self.partitions
        split = _Split(projection, count) if count > 1 else None
        for index, (name, own) in enumerate(zip(names, feeds, strict=True)):
            projector = Projector(
                stored,
                own,
                self.store,
                batch_size=self.batch_size,
                notifier=self.notifier,
                checkpoint=name,
                select=None if split is None else split.of(index),
                service=self.service,
                consumer=base,
            )
            slot = _Slot(index, f"partitions/{self.group}/{name}", projector, number, building)
            slots.append(slot)
            if self.equip is not None:
                self.equip(projector, base, count, index)
        return slots

    @property
    def lanes(self) -> dict[str, list[_Slot]]:
        """Returns the slots of every version and source, by base checkpoint, live first."""
        found: dict[str, list[_Slot]] = {}
        for lane in self._lanes:
            for slot in sorted(lane.slots, key=lambda s: (s.building, s.number, s.index)):
                base = slot.projector.projection.checkpoint(lane.source)
                found.setdefault(base, []).append(slot)
        return found

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
        """Makes the store know each projection's version, then takes the versions to fold.

        Refuses checkpoints made with another partition count: the count is recorded beside
        each version's checkpoints (``<checkpoint>#n``), since folding on with another one
        would apply events again.
        """
        for projection in self.projections:
            await versions.deploy(self.store, projection)
        await self.refresh()

    async def refresh(self, catalog: Catalog | None = None) -> None:
        """Reads which versions need folding; adds their slots, drops the others'.

        Drops the retired versions a switch asked to drop once their grace is over.
        """
        catalog = catalog or await versions.read_catalog(self.store)
        if not self.builds_only:
            for projection in self.projections:
                await versions.drop_replaced(self.store, projection, catalog, 3 * self.ttl)
        for lane in self._lanes:
            wanted = self._wanted(lane.projection, catalog)
            have = {slot.number for slot in lane.slots if not slot.dropped}
            for number in sorted(wanted):
                stored = lane.projection.at(number)
                if stored.checkpoint(lane.source) not in self._counted:
                    await self._check_count(stored, lane.source, catalog)
                    for collection, indexes in stored.collections.items():
                        await self.store.declare(stored.table(collection), indexes)
                    self._counted.add(stored.checkpoint(lane.source))
                if number not in have:
                    lane.slots += self._slots(
                        lane.projection, lane.source, number, building=wanted[number]
                    )
            for slot in lane.slots:
                if slot.number not in wanted:
                    slot.dropped = True
                    slot.owned = False
                else:
                    slot.building = wanted[slot.number]

    def _wanted(self, projection: Projection, catalog: Catalog) -> dict[int, bool]:
        """Returns the versions of ``projection`` to fold: number -> whether it is building."""
        name, code = projection.name, projection.code_version
        wanted: dict[int, bool] = {}
        live = catalog.version(name, catalog.live(name))
        if not self.builds_only:
            if live is None:
                wanted[projection.version] = False
            elif live.code <= code:
                wanted[live.number] = False
        for version in catalog.building(name):
            if version.code == code:
                wanted[version.number] = True
        return wanted

    async def _check_count(self, stored: Projection, source: str, catalog: Catalog) -> None:
        base = stored.checkpoint(source)
        expected = set(partition_checkpoints(base, self.partitions))
        stray = sorted(
            name
            for name in catalog.checkpoints
            if name.partition("#p")[0] == base and name not in expected
        )
        marker = f"{base}#n"
        found = catalog.checkpoints.get(marker, 0)
        if found == 0 and not await self.store.commit(marker, 0, self.partitions, {}):
            found = await self.store.checkpoint(marker)
        if found not in (0, self.partitions):
            stray.append(f"{marker}={found}")
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

        Reads the versions to fold first. Partitions no longer assigned, or whose lease another
        worker took, are marked to be given up by their lane.
        """
        await self.refresh()
        renewed = self._clock()  # before the round trips: a lease may run from the request on
        await self.store.acquire_lease(self.member_lease, self.worker, self.ttl)
        mine = assigned(self.worker, await self.members(), self.partitions)
        before = set(self.owned)
        for slot in self.slots:
            slot.owned = (
                not slot.dropped
                and slot.index in mine
                and await self.store.acquire_lease(slot.lease, self.worker, self.ttl)
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

    async def _settle(self, lane: _Lane) -> list[_Slot]:
        """Gives up the lane's partitions no longer owned; returns the ones to fold."""
        for slot in list(lane.slots):
            if not slot.owned and (slot.active or slot.leased):
                slot.active = slot.leased = False
                slot.projector.meter.release()
                await slot.projector.feed.close()
                await self.store.release_lease(slot.lease, self.worker)
            if slot.owned and not slot.active:
                slot.projector.forget_parked()  # another worker may have parked meanwhile
            slot.active = slot.owned
        lane.slots = [s for s in lane.slots if not (s.dropped and not s.leased)]
        return sorted(
            (s for s in lane.slots if s.active), key=lambda s: (s.building, s.number, s.index)
        )

    async def _step_lane(self, lane: _Lane, timeout: float) -> int:
        active = await self._settle(lane)
        _new_round(lane.slots)
        total = 0
        idle: dict[int, bool] = {}
        for slot in active:
            if slot.building:
                moved = await self._build(lane, slot)
                idle[slot.number] = idle.get(slot.number, True) and not moved
            else:
                moved = await slot.projector.step(timeout=0.0)
            total += moved
            if moved:
                await asyncio.sleep(0)  # a batch may never await (SQLite): let requests in
        for number, caught_up in idle.items():
            if caught_up:
                await self._maybe_switch(lane.projection, number)
        if not total and active and timeout > 0:
            _new_round(lane.slots)
            first = active[0]
            if first.building:
                total = await self._build(lane, first, timeout)
            else:
                total = await first.projector.step(timeout=timeout)
        return total

    async def _build(self, lane: _Lane, slot: _Slot, timeout: float = 0.0) -> int:
        """Folds a batch of a building version; a failing handler fails the build, not the lane."""
        try:
            return await slot.projector.step(timeout=timeout)
        except TRANSIENT:
            raise
        except Exception as exc:
            name, number = lane.projection.name, slot.number
            position = await self.store.checkpoint(slot.projector.checkpoint_name)
            log.error(
                "%s: the build of version %d failed after position %d: %s: %s; the live "
                "version goes on",
                name,
                number,
                position,
                type(exc).__name__,
                exc,
            )
            self.failures[(name, number)] = exc
            await versions.fail(self.store, name, number, position)
            await self.refresh()
            return 0

    async def _maybe_switch(self, projection: Projection, number: int) -> bool:
        """Switches a built version live if it caught up (checked at most every 0.5 s)."""
        if self.head is None:
            return False
        now = time.monotonic()
        if now - self._checked.get((projection.name, number), -float("inf")) < _SWITCH_EVERY:
            return False
        self._checked[(projection.name, number)] = now
        switched = await versions.try_switch(
            self.store,
            projection,
            number,
            self.sources[projection.name],
            self.head,
            self.partitions,
        )
        if switched:
            await self.refresh()
            if self.notifier is not None:
                self.notifier.notify()
        return switched

    async def step(self) -> int:
        """Folds one batch of every owned partition; returns how many events they moved over."""
        total = 0
        for lane in self._lanes:
            total += await self._step_lane(lane, 0.0)
        return total

    async def leave(self) -> None:
        """Gives up every partition and the membership, so the others take over at once."""
        for slot in self.slots:
            slot.owned = False
        for lane in self._lanes:
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

    async def _run_lane(self, lane: _Lane, stop: asyncio.Event) -> None:
        async def turn() -> None:
            self._expire()
            if not await self._step_lane(lane, 0.5) and not any(s.active for s in lane.slots):
                await pause(0.5, stop)

        name = lane.projection.checkpoint(lane.source)
        await retrying(turn, stop, name=name, logger=log)

    async def run(self, stop: asyncio.Event) -> None:
        """Heartbeats and folds until ``stop`` is set, then leaves the group."""
        await self.prepare()
        try:
            await self.heartbeat()
            async with asyncio.TaskGroup() as tasks:  # one failing cancels the others
                tasks.create_task(self._beat(stop))
                for lane in self._lanes:
                    tasks.create_task(self._run_lane(lane, stop))
        finally:
            with contextlib.suppress(BicameralError):
                await self.leave()

    async def catch_up(self) -> int:
        """Joins, then folds every owned partition until nothing is left; returns the events.

        A version being built that catches up is switched live on the way (given ``head``).
        """
        await self.prepare()
        await self.heartbeat()
        total = 0
        while True:
            count = await self.step()
            if not count:
                self._checked.clear()
                if not await self.switch_built():
                    return total
                await self.heartbeat()
            total += count

    async def switch_built(self) -> bool:
        """Tries to switch every version this worker builds; returns True if one switched."""
        switched = False
        for lane in self._lanes:
            for number in {s.number for s in lane.slots if s.building and not s.dropped}:
                switched = await self._maybe_switch(lane.projection, number) or switched
        return switched

    def __repr__(self) -> str:
        return f"ProjectorGroup({self.group!r}, worker={self.worker!r})"


def _position(envelope: Envelope) -> int:
    return envelope.position


def _new_round(lane: Sequence[_Slot]) -> None:
    for slot in lane:
        if isinstance(slot.projector.feed, _CachedFeed):
            slot.projector.feed.forget()


def _partition_feeds(
    feed: FeedFactory, source: str, consumer: str, base: str, names: Sequence[str]
) -> list[Feed]:
    """Returns each partition's feed: one log read shared by all, or a transport consumer each
    whose reads the partitions of this process share (``workers.shared``)."""
    first = feed(source, consumer)
    if len(names) == 1:
        return [first]
    if isinstance(first, LogFeed):
        return [_CachedFeed(first)] * len(names)
    shared = SharedRead()
    return [WindowFeed(shared, feed(source, consumer + name[len(base) :])) for name in names]


class _Split:
    """The events of each partition in a batch of a lane's source, worked out once for all the
    partitions of a version (each reads every event) rather than once by each; the partition of
    each key is remembered (the last ``_KNOWN`` or so)."""

    def __init__(self, projection: Projection, count: int) -> None:
        self._projection = projection
        self._count = count
        self._known: dict[str, int] = {}
        """Partition key -> its partition."""
        self._last: Sequence[Envelope] | None = None
        self._parts: list[list[Envelope]] = []
        """The events of each partition in ``_last``, the batch the partitions read last."""

    def of(self, index: int) -> Select:
        """Returns the selection of partition ``index``: the handled events of its keys."""

        def select(fresh: Sequence[Envelope]) -> list[Envelope]:
            if fresh is not self._last:
                self._split(fresh)
            return list(self._parts[index])

        return select

    def _split(self, fresh: Sequence[Envelope]) -> None:
        known = self._known
        if len(known) > _KNOWN:
            known.clear()
        handlers, key = self._projection.handlers, self._projection.partition_key
        count = self._count
        parts: list[list[Envelope]] = [[] for _ in range(count)]
        for e in fresh:
            if e.type in handlers:
                k = key(e)
                part = known.get(k)
                if part is None:
                    part = known[k] = partition_of(k, count)
                parts[part].append(e)
        self._last, self._parts = fresh, parts
