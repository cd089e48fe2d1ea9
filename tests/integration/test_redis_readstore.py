"""The read-store contract against the Redis server, each test under its own key prefix."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bicameral.ports import ReadStore
from bicameral.readstore.redis import RedisReadStore, index_value, split_url
from bicameral.testing import ReadStoreContract, require_server

URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    """Returns a key prefix unique to the test; deletes its keys afterwards."""
    require_server("redis")
    name = f"t_{uuid.uuid4().hex}"
    yield name
    client = aioredis.Redis.from_url(URL)
    try:
        doomed = [key async for key in client.scan_iter(match=f"{name}:*")]
        if doomed:
            await client.delete(*doomed)
    finally:
        await client.aclose()


class TestRedisReadStore(ReadStoreContract):
    durable = True

    @pytest.fixture(autouse=True)
    def _prefix(self, prefix: str) -> None:
        self.url = f"{URL}?prefix={prefix}"

    async def make_store(self) -> ReadStore:
        return RedisReadStore(self.url)

    async def reopen(self, store: ReadStore) -> ReadStore:
        return RedisReadStore(self.url)


class TestRedisReadStoreWithoutTheLane(TestRedisReadStore):
    """The same contract with reads through redis-py: a URL the pipelined lane does not
    handle (here a socket timeout) keeps redis-py for everything."""

    @pytest.fixture(autouse=True)
    def _prefix(self, prefix: str) -> None:
        self.url = f"{URL}?prefix={prefix}&socket_timeout=5"


def test_the_url_names_the_key_prefix() -> None:
    assert split_url("redis://h:6379/2?prefix=shop_orders") == ("redis://h:6379/2", "shop_orders")
    assert split_url("redis://h:6379/0") == ("redis://h:6379/0", "bicameral")


def test_index_values_are_canonical_json() -> None:
    assert index_value(2.0) == index_value(2) == "2"
    assert index_value({"b": 1, "a": 2}) == '{"a":2,"b":1}'
    assert index_value("1") != index_value(1)


async def test_a_field_declared_later_indexes_existing_documents(prefix: str) -> None:
    store = RedisReadStore(f"{URL}?prefix={prefix}")
    await store.start()
    try:
        await store.declare("items", ["owner"])
        await store.commit("cp", 0, 1, {("items", "a"): {"owner": "ann", "n": 1}})
        await store.declare("items", ["n"])
        assert [k for k, _ in await store.find("items", "n", 1)] == ["a"]
        await store.commit("cp", 1, 2, {("items", "a"): {"owner": "bob", "n": 2}})
        assert await store.find("items", "n", 1) == []
        assert [k for k, _ in await store.find("items", "owner", "bob")] == ["a"]
    finally:
        await store.close()


async def test_a_store_with_stale_fields_still_indexes_its_commits(prefix: str) -> None:
    url = f"{URL}?prefix={prefix}"
    old, new = RedisReadStore(url), RedisReadStore(url)
    await old.start()
    await new.start()
    try:
        await old.declare("items", ["owner"])
        await new.declare("items", ["owner", "n"])
        assert await old.commit("cp", 0, 1, {("items", "a"): {"owner": "ann", "n": 7}})
        assert [k for k, _ in await new.find("items", "n", 7)] == ["a"]
    finally:
        await old.close()
        await new.close()


async def test_an_unreachable_server_is_a_backend_error() -> None:
    from bicameral.errors import BackendError

    store = RedisReadStore("redis://127.0.0.1:1/0")
    with pytest.raises(BackendError, match="cannot reach redis"):
        await store.start()


async def test_large_batches_keep_indexes_equal_to_the_documents(prefix: str) -> None:
    """Batches past the script's chunk size put, re-index and delete like the memory store."""
    from bicameral.readstore.memory import MemoryReadStore

    redis_store, model = RedisReadStore(f"{URL}?prefix={prefix}"), MemoryReadStore()
    await redis_store.start()
    try:
        for store in (redis_store, model):
            await store.declare("items", ["owner", "n"])
        rounds: list[dict[tuple[str, str], dict[str, object] | None]] = [
            {("items", f"k{i:04d}"): {"owner": f"o{i % 3}", "n": i % 5} for i in range(450)},
            {("items", f"k{i:04d}"): {"owner": f"o{i % 4}"} for i in range(0, 450, 2)},
            {("items", f"k{i:04d}"): None for i in range(0, 450, 3)},
        ]
        for position, changes in enumerate(rounds):
            for store in (redis_store, model):
                assert await store.commit("cp", position, position + 1, changes)
        assert await redis_store.all("items") == await model.all("items")
        for field, values in (("owner", ["o0", "o1", "o2", "o3"]), ("n", [0, 1, 2, 3, 4])):
            for value in values:
                found = await redis_store.find("items", field, value)
                assert found == await model.find("items", field, value), (field, value)
    finally:
        await redis_store.close()


async def test_find_on_an_undeclared_field_scans_the_collection(prefix: str) -> None:
    store = RedisReadStore(f"{URL}?prefix={prefix}")
    await store.start()
    try:
        await store.declare("items", [])
        await store.commit("cp", 0, 1, {("items", "b"): {"c": 1}, ("items", "a"): {"c": 1}})
        assert [k for k, _ in await store.find("items", "c", 1)] == ["a", "b"]
    finally:
        await store.close()


_keys = st.sampled_from(["a", "b", "c", "d", "e:1", "ü"])
_docs = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {"owner": st.sampled_from(["ann", "bob"])},
        optional={
            "n": st.sampled_from([1, 2, 2.0, "2"]),
            "x": st.integers(min_value=-(2**63), max_value=2**63 - 1),
        },
    ),
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batches=st.lists(st.dictionaries(_keys, _docs, max_size=6), min_size=1, max_size=5))
def test_documents_and_indexes_match_the_memory_store(
    prefix: str, batches: list[dict[str, dict[str, object] | None]]
) -> None:
    """Any sequence of batches leaves get, all and find as the memory store has them."""
    from bicameral.readstore.memory import MemoryReadStore

    collection = f"c{uuid.uuid4().hex[:8]}"

    async def run() -> None:
        redis_store, model = RedisReadStore(f"{URL}?prefix={prefix}"), MemoryReadStore()
        await redis_store.start()
        try:
            for store in (redis_store, model):
                await store.declare(collection, ["owner", "n"])
            for position, batch in enumerate(batches):
                changes = {(collection, k): d for k, d in batch.items()}
                for store in (redis_store, model):
                    assert await store.commit(collection, position, position + 1, changes)
            assert await redis_store.all(collection) == await model.all(collection)
            for field, value in (("owner", "ann"), ("owner", "bob"), ("n", 2), ("n", "2")):
                expected = await model.find(collection, field, value)
                assert await redis_store.find(collection, field, value) == expected
        finally:
            await redis_store.close()

    asyncio.run(run())
