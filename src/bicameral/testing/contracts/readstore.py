"""The contract every ReadStore adapter passes: documents, indexes, atomic checkpoints."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bicameral.ports import ReadStore

__all__ = ["ReadStoreContract"]

C = "proj_v1_items"
CP = "proj.v1:svc"


class ReadStoreContract:
    """Subclass per backend and implement ``make_store`` (an empty, unstarted store)."""

    durable = False

    async def make_store(self) -> ReadStore:
        """Returns a new, empty, not yet started store."""
        raise NotImplementedError

    async def reopen(self, store: ReadStore) -> ReadStore:
        """Returns a new store object over the same data (durable stores only)."""
        raise NotImplementedError

    @pytest.fixture
    async def store(self) -> AsyncIterator[ReadStore]:
        """Returns a started store with collection ``C`` declared (indexed on ``owner``, ``n``)."""
        made = await self.make_store()
        await made.start()
        await made.declare(C, ["owner", "n"])
        try:
            yield made
        finally:
            await made.close()

    async def test_a_started_store_answers_a_ping(self, store: ReadStore) -> None:
        await asyncio.wait_for(store.ping(), 5.0)

    async def test_a_missing_document_is_none(self, store: ReadStore) -> None:
        assert await store.get(C, "nope") is None
        assert await store.all(C) == []
        assert await store.checkpoint(CP) == 0

    async def test_a_commit_writes_documents_and_moves_the_checkpoint(
        self, store: ReadStore
    ) -> None:
        doc: dict[str, Any] = {
            "owner": "ann",
            "n": 3,
            "ok": True,
            "none": None,
            "tags": ["a", "b"],
            "nested": {"x": 1.5, "y": "ü €"},
        }
        assert await store.commit(CP, 0, 10, {(C, "k1"): doc})
        assert await store.get(C, "k1") == doc
        assert await store.checkpoint(CP) == 10
        assert await store.checkpoints() == {CP: 10}

    async def test_get_many_returns_the_documents_found(self, store: ReadStore) -> None:
        await store.commit(CP, 0, 1, {(C, f"k{i}"): {"n": i} for i in range(700)})
        keys = [f"k{i}" for i in range(0, 700, 2)] + ["nope", "k1"]
        found = await store.get_many(C, keys)
        assert found == {k: {"n": int(k[1:])} for k in keys if k != "nope"}
        assert await store.get_many(C, []) == {}

    async def test_a_commit_at_a_stale_checkpoint_writes_nothing(self, store: ReadStore) -> None:
        assert await store.commit(CP, 0, 5, {(C, "k1"): {"n": 1}})
        assert not await store.commit(CP, 0, 6, {(C, "k1"): {"n": 2}, (C, "k2"): {"n": 2}})
        assert not await store.commit(CP, 4, 6, {(C, "k2"): {"n": 2}})
        assert await store.get(C, "k1") == {"n": 1}
        assert await store.get(C, "k2") is None
        assert await store.checkpoint(CP) == 5

    async def test_racing_commits_from_one_checkpoint_apply_once(self, store: ReadStore) -> None:
        outcomes = await asyncio.gather(
            *(store.commit(CP, 0, 1, {(C, f"k{i}"): {"n": i}}) for i in range(8))
        )
        assert sum(outcomes) == 1
        assert len(await store.all(C)) == 1

    async def test_none_deletes_a_document(self, store: ReadStore) -> None:
        await store.commit(CP, 0, 1, {(C, "k1"): {"n": 1}, (C, "k2"): {"n": 2}})
        await store.commit(CP, 1, 2, {(C, "k1"): None, (C, "absent"): None})
        assert await store.get(C, "k1") is None
        assert [k for k, _ in await store.all(C)] == ["k2"]

    async def test_find_uses_indexed_fields_and_follows_updates(self, store: ReadStore) -> None:
        await store.commit(
            CP,
            0,
            1,
            {
                (C, "b"): {"owner": "ann", "n": 1},
                (C, "a"): {"owner": "ann", "n": 2},
                (C, "c"): {"owner": "bob", "n": 1},
            },
        )
        assert await store.find(C, "owner", "ann") == [
            ("a", {"owner": "ann", "n": 2}),
            ("b", {"owner": "ann", "n": 1}),
        ]
        assert [k for k, _ in await store.find(C, "n", 1)] == ["b", "c"]
        await store.commit(CP, 1, 2, {(C, "a"): {"owner": "bob", "n": 2}})
        assert [k for k, _ in await store.find(C, "owner", "ann")] == ["b"]
        assert [k for k, _ in await store.find(C, "owner", "bob")] == ["a", "c"]
        assert await store.find(C, "owner", "nobody") == []

    async def test_all_is_ordered_by_key(self, store: ReadStore) -> None:
        keys = ["m", "a", "z", "b:1", "b/2", "with space", "ü"]
        await store.commit(CP, 0, 1, {(C, k): {"k": k} for k in keys})
        assert [k for k, _ in await store.all(C)] == sorted(keys)

    async def test_checkpoints_are_independent(self, store: ReadStore) -> None:
        await store.commit("p.v1:a", 0, 3, {})
        await store.commit("p.v1:b", 0, 9, {})
        assert await store.checkpoints() == {"p.v1:a": 3, "p.v1:b": 9}

    async def test_drop_removes_collections_and_checkpoints(self, store: ReadStore) -> None:
        await store.declare("other_v2_items", ["owner"])
        await store.commit(CP, 0, 1, {(C, "k"): {"n": 1}})
        await store.commit("other.v2:svc", 0, 1, {("other_v2_items", "k"): {"n": 2}})
        await store.drop([C], [CP])
        assert await store.get(C, "k") is None
        assert await store.checkpoint(CP) == 0
        assert await store.get("other_v2_items", "k") == {"n": 2}
        await store.declare(C, ["owner"])
        assert await store.commit(CP, 0, 1, {(C, "k"): {"owner": "x"}})
        assert [k for k, _ in await store.find(C, "owner", "x")] == ["k"]

    async def test_a_lease_has_one_owner_until_released_or_expired(self, store: ReadStore) -> None:
        assert await store.acquire_lease("g/p1", "w1", 30)
        assert await store.acquire_lease("g/p1", "w1", 30)
        assert not await store.acquire_lease("g/p1", "w2", 30)
        assert await store.leases("g/") == {"g/p1": "w1"}
        await store.release_lease("g/p1", "w2")
        assert await store.leases("g/") == {"g/p1": "w1"}
        await store.release_lease("g/p1", "w1")
        assert await store.leases("g/") == {}
        assert await store.acquire_lease("g/p1", "w2", 0.2)
        await asyncio.sleep(0.4)
        assert await store.leases("g/") == {}
        assert await store.acquire_lease("g/p1", "w1", 30)
        assert await store.leases("h/") == {}

    async def test_racing_lease_takers_get_one_owner(self, store: ReadStore) -> None:
        won = await asyncio.gather(*(store.acquire_lease("r", f"w{i}", 30) for i in range(6)))
        assert sum(won) == 1

    async def test_a_reopened_store_keeps_documents_and_checkpoints(self, store: ReadStore) -> None:
        if not self.durable:
            pytest.skip("this backend keeps nothing across restarts")
        await store.commit(CP, 0, 4, {(C, "k"): {"owner": "ann"}})
        await store.close()
        again = await self.reopen(store)
        await again.start()
        try:
            await again.declare(C, ["owner", "n"])
            assert await again.get(C, "k") == {"owner": "ann"}
            assert await again.checkpoint(CP) == 4
            assert [k for k, _ in await again.find(C, "owner", "ann")] == ["k"]
        finally:
            await again.close()
