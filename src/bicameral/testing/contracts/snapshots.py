"""The contract every SnapshotStore adapter passes: one snapshot per stream, by schema."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from bicameral.envelope import NewEvent
from bicameral.ports import EventStore, Snapshot, SnapshotStore, StreamAppend

__all__ = ["SnapshotStoreContract"]

STATE: dict[str, Any] = {
    "name": "ünïcode ✓",
    "on_hand": 7,
    "price": 12.5,
    "held": {"o-1": 2, "o-2": 1},
    "tags": ["a", "b"],
    "active": True,
    "note": None,
}


class SnapshotStoreContract:
    """Subclass per backend and implement ``make_store`` (an event store that keeps snapshots);
    ``durable`` stores also ``reopen``."""

    durable = False

    async def make_store(self) -> SnapshotStore:
        """Returns a new, empty, not yet started store."""
        raise NotImplementedError

    async def reopen(self, store: SnapshotStore) -> SnapshotStore:
        """Returns a new store object over the same data as ``store`` (durable stores only)."""
        raise NotImplementedError

    @pytest.fixture
    async def snapshots(self) -> AsyncIterator[SnapshotStore]:
        """Returns a started, empty store, closed after the test."""
        made: Any = await self.make_store()
        await made.start()
        try:
            yield made
        finally:
            await made.close()

    async def test_a_stream_without_a_snapshot_has_none(self, snapshots: SnapshotStore) -> None:
        assert await snapshots.load_snapshot("product-1", "Product:v1") is None

    async def test_a_saved_snapshot_is_read_back_whole(self, snapshots: SnapshotStore) -> None:
        await snapshots.save_snapshot(Snapshot("product-1", "Product:v1", 100, STATE))
        found = await snapshots.load_snapshot("product-1", "Product:v1")
        assert found == Snapshot("product-1", "Product:v1", 100, STATE)

    async def test_a_snapshot_of_another_schema_is_ignored_and_replaced(
        self, snapshots: SnapshotStore
    ) -> None:
        await snapshots.save_snapshot(Snapshot("product-1", "Product:v1", 100, {"a": 1}))
        assert await snapshots.load_snapshot("product-1", "Product:v2") is None
        await snapshots.save_snapshot(Snapshot("product-1", "Product:v2", 40, {"b": 2}))
        assert await snapshots.load_snapshot("product-1", "Product:v1") is None
        found = await snapshots.load_snapshot("product-1", "Product:v2")
        assert found is not None
        assert (found.version, found.state) == (40, {"b": 2})

    async def test_a_newer_snapshot_replaces_an_older_one_never_the_reverse(
        self, snapshots: SnapshotStore
    ) -> None:
        await snapshots.save_snapshot(Snapshot("s", "A:1", 100, {"v": 100}))
        await snapshots.save_snapshot(Snapshot("s", "A:1", 200, {"v": 200}))
        await snapshots.save_snapshot(Snapshot("s", "A:1", 150, {"v": 150}))
        await snapshots.save_snapshot(Snapshot("s", "A:1", 200, {"v": -1}))
        found = await snapshots.load_snapshot("s", "A:1")
        assert found is not None
        assert (found.version, found.state) == (200, {"v": 200})

    async def test_snapshots_are_kept_per_stream(self, snapshots: SnapshotStore) -> None:
        await snapshots.save_snapshot(Snapshot("a", "A:1", 1, {"who": "a"}))
        await snapshots.save_snapshot(Snapshot("b", "A:1", 2, {"who": "b"}))
        a = await snapshots.load_snapshot("a", "A:1")
        b = await snapshots.load_snapshot("b", "A:1")
        assert a is not None
        assert b is not None
        assert (a.version, a.state, b.version, b.state) == (1, {"who": "a"}, 2, {"who": "b"})

    async def test_a_snapshot_is_not_an_event(self, snapshots: SnapshotStore) -> None:
        if not isinstance(snapshots, EventStore):
            pytest.skip("this snapshot store keeps no events")
        new = NewEvent("test.Happened.v1", {"n": 1})
        await snapshots.append([StreamAppend("a", 0, [new])])
        await snapshots.save_snapshot(Snapshot("a", "A:1", 1, {"n": 1}))
        assert await snapshots.head() == 1
        assert await snapshots.stream_version("a") == 1
        assert [e.id for e in await snapshots.read_stream("a")] == [new.id]

    async def test_a_changed_state_does_not_change_the_saved_snapshot(
        self, snapshots: SnapshotStore
    ) -> None:
        state: dict[str, Any] = {"held": {"o-1": 1}}
        await snapshots.save_snapshot(Snapshot("a", "A:1", 1, state))
        state["held"]["o-2"] = 5
        loaded = await snapshots.load_snapshot("a", "A:1")
        assert loaded is not None
        loaded.state["held"]["o-3"] = 9
        again = await snapshots.load_snapshot("a", "A:1")
        assert again is not None
        assert again.state == {"held": {"o-1": 1}}

    async def test_a_reopened_store_keeps_its_snapshots(self, snapshots: SnapshotStore) -> None:
        if not self.durable:
            pytest.skip("this backend keeps nothing across restarts")
        await snapshots.save_snapshot(Snapshot("a", "A:1", 10, STATE))
        await snapshots.close()  # type: ignore[attr-defined]
        again: Any = await self.reopen(snapshots)
        await again.start()
        try:
            assert await again.load_snapshot("a", "A:1") == Snapshot("a", "A:1", 10, STATE)
        finally:
            await again.close()
