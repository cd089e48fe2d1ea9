"""MemoryReadStore: the read store port in a process's memory, for tests and demos."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from typing import Any

from bicameral.ports import Changes

__all__ = ["MemoryReadStore"]


class MemoryReadStore:
    """Documents in dicts; a commit applies its changes without awaiting, so it is atomic.

    ``clock`` (seconds, monotonic) times the leases; tests pass their own to expire them.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._collections: dict[str, dict[str, dict[str, Any]]] = {}
        self._checkpoints: dict[str, int] = {}
        self._leases: dict[str, tuple[str, float]] = {}

    async def start(self) -> None:
        """Does nothing: memory needs no schema."""

    async def close(self) -> None:
        """Does nothing: memory holds no connections."""

    async def ping(self) -> None:
        """Returns at once: memory is always there."""

    async def declare(self, collection: str, indexes: Sequence[str] = ()) -> None:
        """Creates a collection if missing (fields are matched by scanning)."""
        self._collections.setdefault(collection, {})

    async def get(self, collection: str, key: str) -> dict[str, Any] | None:
        """Returns a copy of one document, or None."""
        doc = self._collections.get(collection, {}).get(key)
        return copy.deepcopy(doc) if doc is not None else None

    async def get_many(self, collection: str, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Returns copies of the documents found among ``keys``."""
        docs = self._collections.get(collection, {})
        return {k: copy.deepcopy(docs[k]) for k in keys if k in docs}

    async def find(
        self, collection: str, field: str, value: Any
    ) -> list[tuple[str, dict[str, Any]]]:
        """Returns ``(key, document)`` pairs whose ``field`` equals ``value``, by key."""
        docs = self._collections.get(collection, {})
        return [
            (key, copy.deepcopy(doc))
            for key, doc in sorted(docs.items())
            if doc.get(field) == value
        ]

    async def all(self, collection: str) -> list[tuple[str, dict[str, Any]]]:
        """Returns every ``(key, document)`` pair of a collection, by key."""
        docs = self._collections.get(collection, {})
        return [(key, copy.deepcopy(doc)) for key, doc in sorted(docs.items())]

    async def commit(self, checkpoint: str, expected: int, position: int, changes: Changes) -> bool:
        """Applies ``changes`` and moves the checkpoint, only if it is at ``expected``."""
        if self._checkpoints.get(checkpoint, 0) != expected:
            return False
        for (collection, key), doc in changes.items():
            docs = self._collections.setdefault(collection, {})
            if doc is None:
                docs.pop(key, None)
            else:
                docs[key] = copy.deepcopy(doc)
        self._checkpoints[checkpoint] = position
        return True

    async def checkpoint(self, checkpoint: str) -> int:
        """Returns a checkpoint's position (0 if never committed)."""
        return self._checkpoints.get(checkpoint, 0)

    async def checkpoints(self) -> dict[str, int]:
        """Returns every checkpoint by name."""
        return dict(self._checkpoints)

    async def drop(self, collections: Sequence[str], checkpoints: Sequence[str]) -> None:
        """Deletes collections and checkpoints."""
        for name in collections:
            self._collections.pop(name, None)
        for name in checkpoints:
            self._checkpoints.pop(name, None)

    async def acquire_lease(self, name: str, owner: str, ttl: float) -> bool:
        """Takes or renews a lease unless another owner holds it unexpired."""
        now = self._clock()
        holder = self._leases.get(name)
        if holder is not None and holder[0] != owner and holder[1] > now:
            return False
        self._leases[name] = (owner, now + ttl)
        return True

    async def release_lease(self, name: str, owner: str) -> None:
        """Gives up a lease held by ``owner``."""
        if self._leases.get(name, ("", 0.0))[0] == owner:
            del self._leases[name]

    async def leases(self, prefix: str) -> dict[str, str]:
        """Returns unexpired leases under ``prefix``."""
        now = self._clock()
        return {
            n: owner
            for n, (owner, until) in self._leases.items()
            if n.startswith(prefix) and until > now
        }
