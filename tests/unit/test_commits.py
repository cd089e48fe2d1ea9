"""Commit notices: a per-process fan-out where each listener gets what it missed, at once."""

from __future__ import annotations

import asyncio

from bicameral.commits import EVERYTHING, Commits


async def test_each_listener_gets_the_names_published_since_it_last_looked() -> None:
    commits = Commits()
    first, second = commits.listen(), commits.listen()
    commits.publish(["a.v1:x"])
    commits.publish(["b.v1:x", "a.v1:x"])
    assert await first.next() == {"a.v1:x", "b.v1:x"}
    commits.publish(["c#live"])
    assert await first.next() == {"c#live"}
    assert await second.next() == {"a.v1:x", "b.v1:x", "c#live"}


async def test_the_watcher_runs_only_while_someone_listens() -> None:
    runs: list[str] = []

    async def watch(commits: Commits) -> None:
        runs.append("started")
        commits.connected()
        await asyncio.Event().wait()

    commits = Commits(watch)
    assert not commits.watching
    async with commits.listen():
        await asyncio.sleep(0)
        assert commits.watching
        async with commits.listen():
            pass
        assert commits.watching
    assert not commits.watching
    commits.listen()
    await asyncio.sleep(0)
    assert runs == ["started", "started"]
    await commits.stop()


async def test_a_failed_watcher_is_started_again_and_everything_is_said_to_have_moved() -> None:
    tries: list[int] = []

    async def watch(commits: Commits) -> None:
        tries.append(1)
        commits.connected()
        if len(tries) == 1:
            raise ConnectionError("gone")
        commits.publish(["a.v1:x"])
        await asyncio.Event().wait()

    commits = Commits(watch)
    async with commits.listen() as listener:
        assert await asyncio.wait_for(listener.next(), 10) >= {EVERYTHING}
    assert len(tries) == 2
