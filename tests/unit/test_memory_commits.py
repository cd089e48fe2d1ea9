"""The memory read store's commits are heard in its process."""

from __future__ import annotations

from bicameral.ports import ReadStore
from bicameral.readstore.memory import MemoryReadStore
from bicameral.testing import CommitFeedContract


class TestMemoryCommitFeed(CommitFeedContract):
    async def make_store(self) -> ReadStore:
        return MemoryReadStore()

    async def make_other(self, store: ReadStore) -> ReadStore:
        return store
