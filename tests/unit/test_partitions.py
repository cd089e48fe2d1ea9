"""Several projector workers sharing one projection through partitions and leases."""

from __future__ import annotations

import asyncio
from contextvars import ContextVar

import pytest

from bicameral import ConfigurationError, Event, NewEvent, Projection, StreamAppend, View
from bicameral.envelope import Envelope
from bicameral.eventstore.memory import MemoryEventStore
from bicameral.readstore.memory import MemoryReadStore
from bicameral.workers.feeds import LogFeed
from bicameral.workers.partitions import (
    ProjectorGroup,
    assigned,
    partition_checkpoints,
    partition_of,
    projection_position,
)

PARTITIONS = 8
TTL = 10.0


class Happened(Event, name="parttest.Happened"):
    n: int


history = Projection("history", collections={"streams": []})
STALL: ContextVar[asyncio.Event | None] = ContextVar("STALL", default=None)


@history.on(Happened)
async def happened(event: Happened, view: View, envelope: Envelope) -> None:
    gate = STALL.get()
    if gate is not None:  # a stalled worker: it read its checkpoint, then waits here
        await gate.wait()
    doc = await view.get("streams", envelope.subject) or {"versions": [], "positions": []}
    doc["versions"].append(envelope.stream_version)
    doc["positions"].append(envelope.position)
    view.put("streams", envelope.subject, doc)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def log() -> MemoryEventStore:
    return MemoryEventStore("parttest")


@pytest.fixture
def reads(clock: Clock) -> MemoryReadStore:
    return MemoryReadStore(clock=clock)


def group(
    log: MemoryEventStore, reads: MemoryReadStore, worker: str, partitions: int = PARTITIONS
) -> ProjectorGroup:
    return ProjectorGroup(
        "projector.parttest",
        reads,
        [(history, "parttest")],
        lambda source, consumer: LogFeed(source, log),
        partitions=partitions,
        ttl=TTL,
        worker=worker,
    )


async def write(log: MemoryEventStore, streams: int, rounds: int) -> None:
    for r in range(rounds):
        for s in range(streams):
            data = Happened(n=r).model_dump(mode="json")
            await log.append([StreamAppend(f"s-{s}", None, [NewEvent(Happened.type_name, data)])])


async def assert_folded_once_in_order(log: MemoryEventStore, reads: MemoryReadStore) -> None:
    """Every stream's document lists each of its events once, in stream order."""
    expected: dict[str, list[int]] = {}
    for env in await log.read_all(0, 100_000):
        expected.setdefault(env.subject, []).append(env.position)
    docs = dict(await reads.all(history.table("streams")))
    assert sorted(docs) == sorted(expected)
    for stream, positions in expected.items():
        assert docs[stream]["positions"] == positions
        assert docs[stream]["versions"] == list(range(1, len(positions) + 1))
    head = await log.head()
    assert await projection_position(reads, history.checkpoint("parttest"), PARTITIONS) == head


async def drain(*workers: ProjectorGroup) -> None:
    while sum([await w.step() for w in workers]):
        pass


def test_partition_of_is_a_stable_hash_of_the_key() -> None:
    assert [partition_of(k, 8) for k in ("order-1", "order-2", "sku-A", "")] == [7, 5, 2, 0]
    assert {partition_of(f"s-{i}", 8) for i in range(100)} == set(range(8))


def test_partition_checkpoints_keep_the_plain_name_for_one_partition() -> None:
    assert partition_checkpoints("p.v1:svc", 1) == ["p.v1:svc"]
    assert partition_checkpoints("p.v1:svc", 3) == ["p.v1:svc#p0", "p.v1:svc#p1", "p.v1:svc#p2"]


def test_assignment_deals_partitions_round_robin_over_sorted_members() -> None:
    assert assigned("b", ["c", "a", "b"], 8) == {1, 4, 7}
    assert assigned("a", [], 4) == {0, 1, 2, 3}
    members = ["w1", "w2", "w3"]
    shares = [assigned(m, members, 8) for m in members]
    assert set().union(*shares) == set(range(8))
    assert sum(len(s) for s in shares) == 8


async def test_a_lone_worker_owns_every_partition_and_folds_each_event_once_in_order(
    log: MemoryEventStore, reads: MemoryReadStore
) -> None:
    await write(log, streams=20, rounds=5)
    worker = group(log, reads, "a")
    await worker.catch_up()
    assert len(worker.owned) == PARTITIONS
    await assert_folded_once_in_order(log, reads)


async def test_two_workers_split_the_partitions_and_apply_each_event_once(
    log: MemoryEventStore, reads: MemoryReadStore
) -> None:
    a, b = group(log, reads, "a"), group(log, reads, "b")
    await reads.acquire_lease(b.member_lease, "b", TTL)  # both are members from the start
    for worker in (a, b):
        await worker.prepare()
        await worker.heartbeat()
    assert set(a.owned).isdisjoint(b.owned)
    assert len(a.owned) == len(b.owned) == PARTITIONS // 2
    for _ in range(4):
        await write(log, streams=15, rounds=2)
        await asyncio.gather(a.step(), b.step())
    await drain(a, b)
    await assert_folded_once_in_order(log, reads)


async def test_a_joining_worker_takes_its_share_once_the_owner_lets_go(
    log: MemoryEventStore, reads: MemoryReadStore
) -> None:
    a, b = group(log, reads, "a"), group(log, reads, "b")
    await write(log, streams=10, rounds=3)
    await a.catch_up()
    assert len(a.owned) == PARTITIONS
    await b.prepare()
    await b.heartbeat()
    assert b.owned == []  # its partitions are still leased to a
    await a.heartbeat()
    await a.step()  # a's lanes give up what is no longer assigned to a
    await b.heartbeat()
    assert len(a.owned) == len(b.owned) == PARTITIONS // 2
    assert set(a.owned).isdisjoint(b.owned)
    await write(log, streams=10, rounds=3)
    await drain(a, b)
    await assert_folded_once_in_order(log, reads)


async def test_a_dead_workers_partitions_move_when_its_leases_expire(
    log: MemoryEventStore, reads: MemoryReadStore, clock: Clock
) -> None:
    a, b = group(log, reads, "a"), group(log, reads, "b")
    await reads.acquire_lease(b.member_lease, "b", TTL)
    for worker in (a, b):
        await worker.prepare()
        await worker.heartbeat()
    await write(log, streams=12, rounds=2)
    await drain(a, b)
    # b dies: it never heartbeats again
    await write(log, streams=12, rounds=2)
    clock.now += TTL / 2
    await a.heartbeat()
    assert len(a.owned) == PARTITIONS // 2
    clock.now += TTL
    await a.heartbeat()
    assert len(a.owned) == PARTITIONS
    await drain(a)
    await assert_folded_once_in_order(log, reads)


async def test_a_leaving_worker_hands_its_partitions_over_at_once(
    log: MemoryEventStore, reads: MemoryReadStore
) -> None:
    a, b = group(log, reads, "a"), group(log, reads, "b")
    await reads.acquire_lease(b.member_lease, "b", TTL)
    for worker in (a, b):
        await worker.prepare()
        await worker.heartbeat()
    await b.leave()
    await a.heartbeat()
    assert len(a.owned) == PARTITIONS
    assert await reads.leases("members/") == {a.member_lease: "a"}


async def test_a_stale_owner_racing_the_new_one_cannot_apply_an_event_twice(
    log: MemoryEventStore, reads: MemoryReadStore, clock: Clock
) -> None:
    a, b = group(log, reads, "a"), group(log, reads, "b")
    await a.catch_up()
    clock.now += TTL * 2  # a stalls past its leases; b takes everything
    await b.catch_up()
    assert len(a.owned) == len(b.owned) == PARTITIONS  # a has not noticed yet
    await write(log, streams=10, rounds=2)
    gate = asyncio.Event()

    async def stale() -> int:
        STALL.set(gate)
        return await a.step()

    async def fresh() -> int:
        moved = await b.step()
        gate.set()
        return moved

    await asyncio.gather(stale(), fresh())
    await drain(a, b)
    await assert_folded_once_in_order(log, reads)


async def test_partitions_without_events_still_follow_the_head(
    log: MemoryEventStore, reads: MemoryReadStore
) -> None:
    await write(log, streams=1, rounds=30)
    await group(log, reads, "a").catch_up()
    checkpoints = await reads.checkpoints()
    for name in partition_checkpoints(history.checkpoint("parttest"), PARTITIONS):
        assert checkpoints[name] == 30


async def test_a_projection_is_only_as_far_as_its_slowest_partition(
    log: MemoryEventStore, reads: MemoryReadStore
) -> None:
    await write(log, streams=4, rounds=2)
    worker = group(log, reads, "a")
    await worker.prepare()
    await worker.heartbeat()
    lane = worker.lanes[history.checkpoint("parttest")]
    for slot in lane[1:]:
        await slot.projector.catch_up()
    assert await projection_position(reads, history.checkpoint("parttest"), PARTITIONS) == 0
    await lane[0].projector.catch_up()
    assert await projection_position(reads, history.checkpoint("parttest"), PARTITIONS) == 8


async def test_a_projection_keyed_by_a_custom_partition_key_folds_by_that_key(
    log: MemoryEventStore, reads: MemoryReadStore
) -> None:
    totals = Projection("totals", collections={"totals": []}, partition_by=lambda env: "all")

    @totals.on(Happened)
    async def count(event: Happened, view: View) -> None:
        doc = await view.get("totals", "all") or {"count": 0}
        view.put("totals", "all", {"count": doc["count"] + 1})

    await write(log, streams=9, rounds=3)
    worker = ProjectorGroup(
        "projector.parttest",
        reads,
        [(totals, "parttest")],
        lambda source, consumer: LogFeed(source, log),
        partitions=PARTITIONS,
        worker="a",
    )
    await worker.catch_up()
    assert await reads.get(totals.table("totals"), "all") == {"count": 27}


async def test_a_changed_partition_count_is_refused(
    log: MemoryEventStore, reads: MemoryReadStore
) -> None:
    await write(log, streams=3, rounds=1)
    await group(log, reads, "a", partitions=4).catch_up()
    with pytest.raises(ConfigurationError, match="another partition count"):
        await group(log, reads, "b", partitions=8).prepare()
    with pytest.raises(ConfigurationError, match="another partition count"):
        await group(log, reads, "b", partitions=1).prepare()


async def test_running_workers_fold_everything_and_give_up_their_leases_on_stop(
    log: MemoryEventStore,
) -> None:
    reads = MemoryReadStore()
    workers = [
        ProjectorGroup(
            "projector.parttest",
            reads,
            [(history, "parttest")],
            lambda source, consumer: LogFeed(source, log),
            partitions=PARTITIONS,
            ttl=0.3,
            worker=name,
        )
        for name in ("a", "b")
    ]
    stop = asyncio.Event()
    running = [asyncio.create_task(w.run(stop)) for w in workers]
    await write(log, streams=12, rounds=4)
    checkpoint = history.checkpoint("parttest")

    async def settled() -> bool:
        caught_up = await projection_position(reads, checkpoint, PARTITIONS) == await log.head()
        return caught_up and all(w.owned for w in workers)

    for _ in range(1000):
        if await settled():
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.gather(*running)
    await assert_folded_once_in_order(log, reads)
    assert await reads.leases("") == {}


class CountingLog(MemoryEventStore):
    """A memory log that counts its reads."""

    reads = 0

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[Envelope]:
        self.reads += 1
        return await super().read_all(after_position, limit)


async def test_the_partitions_of_a_worker_read_their_log_once_per_round(
    reads: MemoryReadStore,
) -> None:
    log = CountingLog("parttest")
    await write(log, streams=10, rounds=3)
    worker = group(log, reads, "a")
    await worker.prepare()
    await worker.heartbeat()
    assert await worker.step() == 30 * PARTITIONS
    assert log.reads == 1
    assert await worker.step() == 0
    assert log.reads == 2
    await assert_folded_once_in_order(log, reads)


async def test_two_workers_share_a_rebuild_and_the_last_to_finish_switches_it(
    log: MemoryEventStore, reads: MemoryReadStore
) -> None:
    from bicameral.versions import State, read_catalog, start_rebuild

    async def head(source: str) -> int:
        return await log.head()

    def worker(name: str) -> ProjectorGroup:
        return ProjectorGroup(
            "projector.parttest",
            reads,
            [(history, "parttest")],
            lambda source, consumer: LogFeed(source, log),
            partitions=PARTITIONS,
            ttl=TTL,
            worker=name,
            head=head,
        )

    await write(log, streams=9, rounds=4)
    a, b = worker("a"), worker("b")
    for w in (a, b):
        await w.prepare()
    for w in (a, b, a):
        await w.heartbeat()  # a takes everything, then gives up b's half
    await drain(a, b)
    await b.heartbeat()  # b takes the half a let go of
    await drain(a, b)
    live = dict(await reads.all(history.table("streams")))
    version, started = await start_rebuild(reads, history)
    assert (version.number, started) == (2, True)
    await write(log, streams=9, rounds=1)  # the live version goes on meanwhile
    for w in (a, b):
        await w.heartbeat()
    building = [{s.index for s in w.slots if s.owned and s.number == 2} for w in (a, b)]
    assert building[0]
    assert building[1]
    assert building[0] | building[1] == set(range(PARTITIONS))
    assert not building[0] & building[1]
    while sum([await w.step() for w in (a, b)]):
        pass
    await a.switch_built()  # if the steps' own checks did not switch it already
    await b.switch_built()
    catalog = await read_catalog(reads)
    assert catalog.live("parttest") == 0
    assert catalog.live("history") == 2
    assert catalog.version("history", 1).state == State.RETIRED  # type: ignore[union-attr]
    rebuilt = dict(await reads.all(history.table("streams", 2)))
    folded = dict(await reads.all(history.table("streams")))
    assert rebuilt == folded
    assert len(rebuilt) == len(live) == 9
    await a.heartbeat()
    assert not [s for s in a.slots if s.number == 1 and s.owned]  # the retired one is let go


async def test_partitions_at_different_positions_fold_each_event_once_in_order(
    log: MemoryEventStore, reads: MemoryReadStore
) -> None:
    """Partitions of one lane that stand at different positions share what the lane read in
    a round (a partition ahead takes the part above its checkpoint) without losing an event."""
    await write(log, streams=12, rounds=6)
    for worker_id, batch_size in (("a", 3), ("b", 7)):  # "b" finds partitions mid-batch
        worker = ProjectorGroup(
            "projector.parttest",
            reads,
            [(history, "parttest")],
            lambda source, consumer: LogFeed(source, log),
            partitions=PARTITIONS,
            ttl=TTL,
            worker=worker_id,
            batch_size=batch_size,
        )
        await worker.prepare()
        await worker.heartbeat()
        lane = worker.lanes[history.checkpoint("parttest")]
        for turn in range(40):  # uneven steps, some within one round, some across rounds
            await lane[(turn * 5) % PARTITIONS].projector.step(timeout=0.0)
            if turn % 3 == 0:
                await worker.step()
        if worker_id == "b":
            await drain(worker)
        await worker.leave()
    await assert_folded_once_in_order(log, reads)
