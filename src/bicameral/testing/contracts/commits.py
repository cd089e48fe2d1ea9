"""The contract every read store with a change feed (``bicameral.ports.CommitFeed``) passes:
a commit, by this process or another, is heard by every listener, naming its checkpoint."""

from __future__ import annotations

import asyncio

from bicameral.ports import CommitFeed, ReadStore

__all__ = ["CommitFeedContract"]

WAIT = 10.0
"""Seconds a test waits for a notice that must come."""
TABLE = "proj_v1_items"


async def _commit(store: ReadStore, checkpoint: str, expected: int, position: int) -> bool:
    await store.declare(TABLE)
    changes = {(TABLE, f"k{position}"): {"n": position}}
    return await store.commit(checkpoint, expected, position, changes)


class CommitFeedContract:
    """Subclass per backend; implement ``make_store`` and ``make_other``."""

    async def make_store(self) -> ReadStore:
        """Returns a new, empty, not yet started store with a change feed."""
        raise NotImplementedError

    async def make_other(self, store: ReadStore) -> ReadStore:
        """Returns a not yet started store on the same data as ``store``, as another process
        would open it (the same object for a store that lives in one process)."""
        raise NotImplementedError

    async def _stores(self) -> tuple[ReadStore, ReadStore]:
        store = await self.make_store()
        await store.start()
        other = await self.make_other(store)
        await other.start()
        return store, other

    async def _close(self, *stores: ReadStore) -> None:
        for store in dict.fromkeys(stores):
            await store.close()

    async def test_a_commit_by_another_store_is_heard_naming_its_checkpoint(self) -> None:
        store, other = await self._stores()
        try:
            assert isinstance(store, CommitFeed)
            commits = store.commits()
            async with commits.listen() as first, commits.listen() as second:
                await commits.ready(WAIT)
                assert await _commit(other, "proj.v1:svc", 0, 1)
                assert await asyncio.wait_for(first.next(), WAIT) == {"proj.v1:svc"}
                assert await asyncio.wait_for(second.next(), WAIT) == {"proj.v1:svc"}
                assert await other.commit("proj#live", 0, 1, {})
                assert await asyncio.wait_for(first.next(), WAIT) == {"proj#live"}
        finally:
            await self._close(store, other)

    async def test_a_refused_commit_is_not_heard(self) -> None:
        store, other = await self._stores()
        try:
            assert isinstance(store, CommitFeed)
            commits = store.commits()
            async with commits.listen() as listener:
                await commits.ready(WAIT)
                assert not await _commit(other, "proj.v1:svc", 5, 6)
                assert await _commit(other, "proj.v1:other", 0, 1)
                assert await asyncio.wait_for(listener.next(), WAIT) == {"proj.v1:other"}
        finally:
            await self._close(store, other)

    async def test_the_watcher_runs_only_while_someone_listens(self) -> None:
        store, other = await self._stores()
        try:
            assert isinstance(store, CommitFeed)
            commits = store.commits()
            async with commits.listen():
                await commits.ready(WAIT)
            assert not commits.watching
            async with commits.listen() as listener:
                await commits.ready(WAIT)
                assert await _commit(other, "proj.v1:svc", 0, 1)
                assert "proj.v1:svc" in await asyncio.wait_for(listener.next(), WAIT)
        finally:
            await self._close(store, other)
