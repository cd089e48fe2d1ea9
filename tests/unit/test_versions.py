"""Read-model versions: building, live and retired, kept as compare-and-set markers."""

from __future__ import annotations

import asyncio
import time

import pytest

from bicameral import BackendError, ConfigurationError, Event, Projection, View
from bicameral.readstore.memory import MemoryReadStore
from bicameral.versions import (
    LiveVersions,
    State,
    deploy,
    drop_old,
    drop_replaced,
    drop_retired,
    fail,
    read_catalog,
    start_rebuild,
    try_switch,
)


class Noted(Event, name="vtest.Noted"):
    n: int


def projection(version: int = 1) -> Projection:
    found = Projection("notes", collections={"notes": []}, version=version)

    @found.on(Noted)
    def noted(event: Noted, view: View) -> None:
        view.put("notes", str(event.n), {"n": event.n})

    return found


async def at(store: MemoryReadStore, number: int, position: int) -> None:
    """Moves version ``number``'s checkpoint of source ``vtest`` to ``position``."""
    name = f"notes.v{number}:vtest"
    assert await store.commit(name, await store.checkpoint(name), position, {})


def heads(position: int):  # type: ignore[no-untyped-def]
    async def head(source: str) -> int:
        return position

    return head


async def test_a_new_projection_is_live_at_once_under_its_code_version() -> None:
    store = MemoryReadStore()
    catalog = await deploy(store, projection(3))
    assert catalog.live("notes") == 3
    assert [(v.number, v.code, v.state) for v in catalog.versions("notes")] == [(3, 3, State.LIVE)]


async def test_a_store_written_before_versions_had_states_keeps_its_version_live() -> None:
    store = MemoryReadStore()
    await at(store, 1, 40)
    catalog = await deploy(store, projection(2))
    assert catalog.live("notes") == 1
    assert [(v.number, v.code, v.state) for v in catalog.versions("notes")] == [
        (1, 1, State.LIVE),
        (2, 2, State.BUILDING),
    ]


async def test_a_version_bump_builds_beside_the_live_one_once() -> None:
    store = MemoryReadStore()
    await deploy(store, projection(1))
    await deploy(store, projection(2))
    catalog = await deploy(store, projection(2))
    assert catalog.live("notes") == 1
    assert [v.number for v in catalog.building("notes")] == [2]


async def test_a_rebuild_takes_the_next_number_and_a_second_one_attaches() -> None:
    store = MemoryReadStore()
    await deploy(store, projection(1))
    first, started = await start_rebuild(store, projection(1))
    again, started_again = await start_rebuild(store, projection(1))
    assert (first.number, first.code, started) == (2, 1, True)
    assert (again.number, started_again) == (2, False)


async def test_code_older_than_the_live_version_cannot_rebuild_it() -> None:
    store = MemoryReadStore()
    await deploy(store, projection(3))
    with pytest.raises(ConfigurationError, match="built by newer code"):
        await start_rebuild(store, projection(2))


async def test_the_switch_waits_for_every_partition_to_pass_the_head() -> None:
    store = MemoryReadStore()
    await deploy(store, projection(1))
    await start_rebuild(store, projection(1))
    await at(store, 2, 9)
    assert not await try_switch(store, projection(1), 2, ["vtest"], heads(10), 1)
    assert (await read_catalog(store)).live("notes") == 1
    await at(store, 2, 10)
    assert await try_switch(store, projection(1), 2, ["vtest"], heads(10), 1)
    catalog = await read_catalog(store)
    assert catalog.live("notes") == 2
    assert [(v.number, v.state) for v in catalog.versions("notes")] == [
        (1, State.RETIRED),
        (2, State.LIVE),
    ]
    assert not await try_switch(store, projection(1), 2, ["vtest"], heads(10), 1)


async def test_a_failed_build_is_never_switched_and_a_deploy_does_not_restart_it() -> None:
    store = MemoryReadStore()
    await deploy(store, projection(1))
    await deploy(store, projection(2))
    await fail(store, "notes", 2, 5)
    await at(store, 2, 10)
    assert not await try_switch(store, projection(2), 2, ["vtest"], heads(10), 1)
    catalog = await deploy(store, projection(2))
    assert catalog.version("notes", 2).state == State.FAILED  # type: ignore[union-attr]
    assert catalog.version("notes", 2).failed_at == 5  # type: ignore[union-attr]
    assert catalog.building("notes") == []
    again, started = await start_rebuild(store, projection(2))
    assert (again.number, started) == (3, True)


async def test_drop_retired_drops_only_retired_and_failed_versions() -> None:
    store = MemoryReadStore()
    await deploy(store, projection(1))
    await store.commit("notes.v1:vtest", 0, 10, {("notes_v1_notes", "a"): {"n": 1}})
    await start_rebuild(store, projection(1))
    await at(store, 2, 10)
    assert await drop_retired(store, projection(1)) == []
    assert await try_switch(store, projection(1), 2, ["vtest"], heads(10), 1)
    assert await drop_retired(store, projection(1)) == [1]
    assert await store.all("notes_v1_notes") == []
    assert [c for c in await store.checkpoints() if c.startswith("notes.v1")] == []
    assert [v.number for v in (await read_catalog(store)).versions("notes")] == [2]


async def test_a_switch_asked_to_drop_the_old_version_does_so_after_the_grace() -> None:
    store = MemoryReadStore()
    await deploy(store, projection(1))
    version, _ = await start_rebuild(store, projection(1))
    await drop_old(store, "notes", version.number)
    await at(store, 2, 3)
    assert await try_switch(store, projection(1), 2, ["vtest"], heads(3), 1)
    catalog = await read_catalog(store)
    assert await drop_replaced(store, projection(1), catalog, grace=60) == []
    assert await drop_replaced(store, projection(1), catalog, grace=-1) == [1]


class Clock:
    def __init__(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        return self.now


async def test_queries_keep_the_old_version_until_the_new_one_has_passed_it() -> None:
    store, clock = MemoryReadStore(), Clock()
    live = LiveVersions(store, ttl=0.5, clock=clock)
    await deploy(store, projection(1))
    await at(store, 1, 20)
    assert await live.version(projection(1)) == 1
    await start_rebuild(store, projection(1))
    await at(store, 2, 15)
    await store.commit("notes#live", 1, 2, {})  # switched while version 1 was further on
    clock.now += 1
    assert await live.version(projection(1)) == 1
    assert await live.position(projection(1), "vtest") == 20
    await at(store, 2, 20)
    clock.now += 1
    assert await live.version(projection(1)) == 2
    await at(store, 1, 30)  # never back to the old one
    clock.now += 1
    assert await live.version(projection(1)) == 2


async def test_a_store_never_deployed_is_read_at_the_code_version() -> None:
    live = LiveVersions(MemoryReadStore())
    assert await live.version(projection(4)) == 4


class CountedStore(MemoryReadStore):
    """A memory store counting reads of every checkpoint, each taking a turn of the loop."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def checkpoints(self) -> dict[str, int]:
        self.reads += 1
        await asyncio.sleep(0)
        return await super().checkpoints()


async def test_queries_that_find_the_catalog_stale_together_wait_for_one_read() -> None:
    store, clock = CountedStore(), Clock()
    live = LiveVersions(store, ttl=0.5, clock=clock)
    await deploy(store, projection(1))
    store.reads = 0
    versions = await asyncio.gather(*(live.version(projection(1)) for _ in range(32)))
    assert versions == [1] * 32
    assert store.reads == 1
    clock.now += 1
    await asyncio.gather(*(live.version(projection(1)) for _ in range(32)))
    assert store.reads == 2


async def test_a_failed_catalog_read_fails_its_waiters_and_the_next_query_reads_again() -> None:
    store, clock = CountedStore(), Clock()
    live = LiveVersions(store, ttl=0.5, clock=clock)
    await deploy(store, projection(1))
    broken = store.checkpoints

    async def failing() -> dict[str, int]:
        await asyncio.sleep(0)
        raise BackendError("away")

    store.checkpoints = failing  # type: ignore[method-assign]
    got = await asyncio.gather(
        *(live.version(projection(1)) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(g, BackendError) for g in got)
    store.checkpoints = broken  # type: ignore[method-assign]
    assert await live.version(projection(1)) == 1
