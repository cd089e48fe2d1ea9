"""Prefetch: a batch loads the documents its handlers read in one read, and folds the same."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from bicameral import Event, Projection, View
from bicameral.envelope import Envelope
from bicameral.readstore.memory import MemoryReadStore


class Bumped(Event, name="t.Bumped"):
    key: str


class CountingStore(MemoryReadStore):
    """Counts single and batched reads."""

    def __init__(self) -> None:
        super().__init__()
        self.gets = 0
        self.batches = 0

    async def get(self, collection: str, key: str) -> dict[str, Any] | None:
        self.gets += 1
        return await super().get(collection, key)

    async def get_many(self, collection: str, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        self.batches += 1
        return await super().get_many(collection, keys)


def projection(prefetch: bool) -> Projection:
    proj = Projection("counts", collections={"counts": []})

    @proj.on(Bumped, prefetch=(lambda e: [("counts", e.key)]) if prefetch else None)
    async def bumped(event: Bumped, view: View) -> None:
        doc = await view.get("counts", event.key) or {"n": 0}
        doc["n"] += 1
        view.put("counts", event.key, doc)

    return proj


def batch(keys: list[str], first: int = 1) -> list[Envelope]:
    now = datetime.now(UTC)
    return [
        Envelope(f"e{first + i}", "t.Bumped.v1", "t", k, now, 1, first + i, {"key": k})
        for i, k in enumerate(keys)
    ]


async def fold(proj: Projection, store: CountingStore, envelopes: list[Envelope]) -> None:
    view = View(proj, store)
    await proj.fold(envelopes, view)
    cp = "counts.v1:t"
    await store.commit(cp, await store.checkpoint(cp), envelopes[-1].position, view.changes)


async def test_a_prefetched_batch_reads_once_and_folds_the_same() -> None:
    keys = ["a", "b", "a", "c", "b", "a"]
    plain, fetched = CountingStore(), CountingStore()
    for store, proj in ((plain, projection(False)), (fetched, projection(True))):
        await fold(proj, store, batch(keys))
        await fold(proj, store, batch(keys, first=7))
    assert await fetched.all("counts_v1_counts") == await plain.all("counts_v1_counts")
    assert dict(await fetched.all("counts_v1_counts"))["a"] == {"n": 6}
    assert (fetched.gets, fetched.batches) == (0, 2)
    assert plain.gets == 6
