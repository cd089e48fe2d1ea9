"""A memory read store that counts the reads made of it, and a backend factory using it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bicameral.readstore.memory import MemoryReadStore
from bicameral.runtime.backends import BackendFactory

__all__ = ["CountingReadStore", "OneReadStore"]


class CountingReadStore(MemoryReadStore):
    """A memory read store counting the reads made of it."""

    reads = 0

    async def get(self, collection: str, key: str) -> dict[str, Any] | None:
        self.reads += 1
        return await super().get(collection, key)

    async def get_many(self, collection: str, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        self.reads += 1
        return await super().get_many(collection, keys)

    async def find(self, collection: str, field: str, value: Any) -> list[Any]:
        self.reads += 1
        return await super().find(collection, field, value)

    async def all(self, collection: str) -> list[tuple[str, dict[str, Any]]]:
        self.reads += 1
        return await super().all(collection)

    async def checkpoint(self, checkpoint: str) -> int:
        self.reads += 1
        return await super().checkpoint(checkpoint)

    async def checkpoints(self) -> dict[str, int]:
        self.reads += 1
        return await super().checkpoints()


class OneReadStore(BackendFactory):
    """Memory backends, with one counting read store for every service."""

    def __init__(self) -> None:
        super().__init__()
        self.store = CountingReadStore()

    def read_store(self, url: str) -> CountingReadStore:
        return self.store
