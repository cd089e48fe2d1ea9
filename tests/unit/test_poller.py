"""The console's status poller: one reading shared by every watcher, none without watchers,
and a slow watcher skips to the latest reading."""

from __future__ import annotations

import asyncio

from bicameral.runtime.poller import Poller


class Counter:
    def __init__(self) -> None:
        self.reads = 0

    async def read(self) -> int:
        self.reads += 1
        return self.reads


async def test_nothing_is_read_while_nobody_watches() -> None:
    counter = Counter()
    poller = Poller(counter.read, every=0.01)
    await asyncio.sleep(0.05)
    assert counter.reads == 0
    async with poller.watch() as watch:
        assert await watch.next(5.0) == 1
    reads = counter.reads
    await asyncio.sleep(0.05)
    assert counter.reads == reads


async def test_watchers_share_one_reader_and_a_slow_one_gets_the_latest() -> None:
    counter = Counter()
    poller = Poller(counter.read, every=0.01)
    async with poller.watch() as fast, poller.watch() as slow:
        seen = [await fast.next(5.0) for _ in range(5)]
        assert seen == sorted(seen)
        assert len(set(seen)) == 5
        latest = await slow.next(5.0)
        assert latest is not None
        assert latest >= seen[-1]  # the readings it missed are skipped, not queued
        assert poller.watchers == 2
    assert poller.watchers == 0


async def test_a_failed_reading_keeps_the_last_one() -> None:
    calls = 0

    async def flaky() -> int:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("backend away")
        return calls

    poller = Poller(flaky, every=0.01)
    async with poller.watch() as watch:
        assert await watch.next(5.0) == 1
        assert await watch.next(5.0) == 3
