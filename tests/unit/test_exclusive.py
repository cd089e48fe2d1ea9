"""Exclusive: one copy of a worker steps at a time; another takes over when it stops or dies."""

from __future__ import annotations

import asyncio

from bicameral.readstore.memory import MemoryReadStore
from bicameral.workers.exclusive import Exclusive


class Counter:
    """A worker that records which copy stepped."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log
        self.resets = 0

    async def step(self, timeout: float = 1.0) -> int:
        self.log.append(self.name)
        await asyncio.sleep(0.01)
        return 1

    def reset(self) -> None:
        self.resets += 1


async def test_only_the_lease_holder_steps_and_a_standby_takes_over_on_stop() -> None:
    store = MemoryReadStore()
    log: list[str] = []
    a, b = Counter("a", log), Counter("b", log)
    stop_a, stop_b = asyncio.Event(), asyncio.Event()
    run_a = asyncio.create_task(Exclusive(a, store, "relay/x", "a", 0.3).run(stop_a))
    await asyncio.sleep(0.05)
    run_b = asyncio.create_task(Exclusive(b, store, "relay/x", "b", 0.3).run(stop_b))
    await asyncio.sleep(0.3)
    assert set(log) == {"a"}
    stop_a.set()
    await run_a
    log.clear()
    await asyncio.sleep(0.5)
    assert set(log) == {"b"}
    assert (a.resets, b.resets) == (2, 1)  # reset on taking the lease and on giving it up
    stop_b.set()
    await run_b
    assert await store.leases("relay/") == {}


async def test_a_dead_holders_lease_expires_and_a_standby_takes_over() -> None:
    store = MemoryReadStore()
    log: list[str] = []
    assert await store.acquire_lease("relay/x", "dead", 0.2)
    stop = asyncio.Event()
    run = asyncio.create_task(Exclusive(Counter("b", log), store, "relay/x", "b", 0.3).run(stop))
    await asyncio.sleep(0.1)
    assert log == []
    await asyncio.sleep(0.6)
    assert log
    stop.set()
    await run


class CountingLeases(MemoryReadStore):
    """A read store counting the lease requests made to it."""

    def __init__(self) -> None:
        super().__init__()
        self.requests = 0

    async def acquire_lease(self, name: str, owner: str, ttl: float) -> bool:
        self.requests += 1
        return await super().acquire_lease(name, owner, ttl)


class StopsAfter(Counter):
    """A Counter that sets ``stop`` after ``steps`` steps."""

    def __init__(self, steps: int, stop: asyncio.Event, log: list[str]) -> None:
        super().__init__("a", log)
        self.steps = steps
        self.stop = stop

    async def step(self, timeout: float = 1.0) -> int:
        if len(self.log) >= self.steps:
            self.stop.set()
        return await super().step(timeout)


async def test_the_holder_renews_its_lease_once_per_third_of_its_ttl_not_every_step() -> None:
    store = CountingLeases()
    log: list[str] = []
    stop = asyncio.Event()
    await Exclusive(StopsAfter(10, stop, log), store, "relay/x", "a", 60.0).run(stop)
    assert len(log) > 10
    assert store.requests == 1, "ten steps, well within 20 s, on one renewal"
