"""Live queries: each subscriber gets the query's new result when a commit changes it, groups
run once per notice, a slow reader gets only the latest, and idle subscriptions read nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bicameral.commits import EVERYTHING
from bicameral.consistency import Notifier
from bicameral.context import MessageContext, Principal
from bicameral.errors import NotFoundError
from bicameral.readstore.memory import MemoryReadStore
from bicameral.runtime.live import live_queries
from bicameral.runtime.node import Node
from bicameral.runtime.settings import Settings
from bicameral.workers.live import LiveQueries, LiveQuery, Refused, in_process
from shop.app import services
from shop.inventory.messages import GetProduct, ListProducts
from shop.inventory.projections import products
from tests.unit.counting import OneReadStore

WAIT = 10.0
"""Seconds a test waits for what must come (a loaded machine is slow, never wrong)."""


class Writer:
    """Commits product documents as a projector of another process would."""

    def __init__(self, store: MemoryReadStore) -> None:
        self.store = store
        self.positions: dict[str, int] = {}

    async def put(
        self, sku: str, on_hand: int | None, checkpoint: str = "products.v1:inventory/0"
    ) -> None:
        """Writes the product with ``on_hand``, or deletes it (None)."""
        doc = (
            None
            if on_hand is None
            else {
                "sku": sku,
                "name": sku.title(),
                "price_cents": 100,
                "on_hand": on_hand,
                "reserved": 0,
                "available": on_hand,
            }
        )
        changes = {(products.table("products"), sku): doc}
        at = self.positions.get(checkpoint, 0)
        assert await self.store.commit(checkpoint, at, at + 1, changes)
        self.positions[checkpoint] = at + 1


@pytest.fixture
def factory() -> OneReadStore:
    return OneReadStore()


@pytest.fixture
async def node(tmp_path: Path, factory: OneReadStore) -> AsyncIterator[Node]:
    settings = Settings.load(
        environ={},
        data_dir=tmp_path,
        events_url="memory://",
        reads_url="memory://",
        transport_url="memory://",
    )
    made = Node(settings, services(), ["query-api"], factory=factory)
    await made.start()
    yield made
    await made.stop()


@pytest.fixture
def hub(node: Node) -> LiveQueries:
    return live_queries(node.runtime("inventory"))


@pytest.fixture
def writer(factory: OneReadStore) -> Writer:
    return Writer(factory.store)


async def _next(live: LiveQuery) -> Any:
    return await asyncio.wait_for(live.next(), WAIT)


ANYONE = MessageContext()


@pytest.fixture
async def mug(hub: LiveQueries, writer: Writer) -> AsyncIterator[LiveQuery]:
    """Returns a subscription to GetProduct(mug), its first result (1 on hand) taken."""
    await writer.put("mug", 1)
    live = await hub.subscribe(GetProduct(sku="mug"), ANYONE)
    assert (await _next(live))["on_hand"] == 1
    yield live
    await live.close()


async def test_the_first_result_comes_at_once_then_each_change(
    hub: LiveQueries, writer: Writer, mug: LiveQuery
) -> None:
    await writer.put("mug", 5)
    assert (await _next(mug))["on_hand"] == 5
    await mug.close()
    assert hub.subscribers == 0
    assert not hub.commits.watching


async def test_a_commit_that_leaves_the_result_as_it_was_sends_nothing(
    writer: Writer, mug: LiveQuery
) -> None:
    await writer.put("pen", 3)  # another product: GetProduct(mug) reads the same
    await writer.put("mug", 1)  # the same document again
    await writer.put("mug", 2)
    assert (await _next(mug))["on_hand"] == 2  # nothing came between


async def test_a_query_refused_at_subscribe_time_leaves_nothing_subscribed(
    hub: LiveQueries,
) -> None:
    with pytest.raises(NotFoundError):
        await hub.subscribe(GetProduct(sku="nothing"), ANYONE)
    assert hub.subscribers == 0
    assert not hub.commits.watching


async def test_identical_subscriptions_share_one_run_per_commit(
    hub: LiveQueries, writer: Writer, factory: OneReadStore
) -> None:
    await writer.put("mug", 1)
    alice = MessageContext(principal=Principal("alice", frozenset({"customer"})))
    subs = [await hub.subscribe(GetProduct(sku="mug"), ANYONE) for _ in range(5)]
    other = await hub.subscribe(GetProduct(sku="mug"), alice)
    assert hub.groups == 2
    for live in [*subs, other]:
        await _next(live)
    before = factory.store.reads
    await writer.put("mug", 2)
    for live in [*subs, other]:
        assert (await _next(live))["on_hand"] == 2
    assert factory.store.reads - before <= 2 * 2  # one run per group: a get (and a catalog read)
    for live in [*subs, other]:
        await live.close()


async def test_a_slow_subscriber_gets_the_latest_result_only_and_holds_no_one_back(
    hub: LiveQueries, writer: Writer
) -> None:
    await writer.put("mug", 0)
    slow = await hub.subscribe(GetProduct(sku="mug"), ANYONE)
    fast = await hub.subscribe(GetProduct(sku="mug"), ANYONE)
    await _next(fast)
    for n in range(1, 6):
        await writer.put("mug", n)
        assert (await _next(fast))["on_hand"] == n
    assert (await _next(slow))["on_hand"] == 5  # 0 to 4 were dropped
    await writer.put("mug", 6)
    assert (await _next(slow))["on_hand"] == 6
    await slow.close()
    await fast.close()


async def test_a_version_switch_wakes_the_queries_of_that_projection(
    hub: LiveQueries, writer: Writer
) -> None:
    await writer.put("mug", 1)
    live = await hub.subscribe(ListProducts(), ANYONE)
    await _next(live)
    await writer.put("pen", 2, checkpoint="stock.v1:inventory/0")  # not a checkpoint it reads
    await writer.put("cup", 3, checkpoint="productsmore.v1:inventory/0")  # nor this
    assert await writer.store.commit("products#live", 1, 1, {})  # the live version "moved"
    assert [p["sku"] for p in (await _next(live))["items"]] == ["cup", "mug", "pen"]
    await live.close()


async def test_a_thousand_idle_subscriptions_read_nothing_until_a_commit(
    hub: LiveQueries, writer: Writer, factory: OneReadStore
) -> None:
    for n in range(10):
        await writer.put(f"p{n}", n)
    subs = [await hub.subscribe(GetProduct(sku=f"p{n % 10}"), ANYONE) for n in range(1000)]
    for live in subs:
        await _next(live)
    idle_from = factory.store.reads
    await asyncio.sleep(1.0)  # idle: nothing committed
    assert factory.store.reads == idle_from
    await writer.put("p3", 30)
    woken = [live for n, live in enumerate(subs) if n % 10 == 3]
    for live in woken:
        assert (await _next(live))["on_hand"] == 30
    assert factory.store.reads - idle_from <= 10 * 2  # one run per distinct query
    for live in subs:
        await live.close()
    assert hub.groups == 0


async def test_a_query_that_refuses_later_sends_the_refusal_then_results_again(
    writer: Writer, mug: LiveQuery
) -> None:
    await writer.put("mug", None)
    refused = await _next(mug)
    assert isinstance(refused, Refused)
    assert (refused.kind, refused.detail) == ("NotFoundError", "no product 'mug'")
    await writer.put("mug", 4)
    assert (await _next(mug))["on_hand"] == 4


async def test_without_a_change_feed_the_processs_own_commits_wake_the_queries() -> None:
    notifier = Notifier()
    commits = in_process(notifier)
    async with commits.listen() as listener:
        await commits.ready(WAIT)
        notifier.notify()
        assert await asyncio.wait_for(listener.next(), WAIT) == {EVERYTHING}
