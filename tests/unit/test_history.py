"""The history of a Node's event logs: by time across services, a limit in all, filters."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bicameral import MessageContext, Principal
from bicameral.runtime.history import EventFilter, History
from bicameral.runtime.node import Node
from bicameral.runtime.settings import Settings
from shop.inventory.messages import ReceiveStock, RegisterProduct
from shop.inventory.service import inventory
from shop.payments.messages import DepositFunds
from shop.payments.service import payments

CLERK = MessageContext(principal=Principal("clerk-1", frozenset({"staff"})))
ANN = MessageContext(principal=Principal("ann", frozenset({"customer"})))


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    config = Settings.load(
        environ={}, events_url="memory://", reads_url="memory://", transport_url="memory://"
    )
    node = Node(config, [inventory, payments], roles=())
    for backend in node.factory.started():
        await backend.start()
    yield node
    await node.stop()


async def interleave(node: Node, count: int, first: int = 0) -> list[tuple[str, str]]:
    """Appends ``count`` events alternating between inventory and payments; returns
    (service, stream) of each in the order they were appended."""
    made = []
    for i in range(first, first + count):
        if i % 2:
            body = DepositFunds(customer_id="ann", amount_cents=100 + i)
            await node.runtime("payments").commands.dispatch(body, ANN)
            made.append(("payments", "account-ann"))
        else:
            product = RegisterProduct(sku=f"s{i}", name="Pen", price_cents=5)
            await node.runtime("inventory").commands.dispatch(product, CLERK)
            made.append(("inventory", f"product-s{i}"))
    return made


async def test_the_newest_events_of_all_services_come_in_time_order_limited_in_all(
    node: Node,
) -> None:
    made = await interleave(node, 7)
    found = await History(node).newest(limit=4)
    assert [(name, env.subject) for name, env in found] == made[-4:]
    times = [env.time for _, env in found]
    assert times == sorted(times)


async def test_filters_keep_a_stream_a_type_or_a_principal(node: Node) -> None:
    await interleave(node, 6)
    await node.runtime("inventory").commands.dispatch(ReceiveStock(sku="s0", quantity=3), CLERK)

    async def shown(**where: str) -> list[str]:
        found = await History(node, EventFilter(**where)).newest(limit=50)
        return [env.type for _, env in found]

    assert await shown(stream="product-s0") == [
        "inventory.ProductRegistered.v1",
        "inventory.StockReceived.v1",
    ]
    for name in ("inventory.StockReceived.v1", "inventory.StockReceived", "StockReceived"):
        assert await shown(type=name) == ["inventory.StockReceived.v1"]
    assert set(await shown(principal="ann")) == {"payments.FundsDeposited.v1"}
    assert await shown(principal="nobody") == []


async def test_following_shows_only_what_was_appended_since(node: Node) -> None:
    await interleave(node, 3)
    history = History(node, EventFilter(type="ProductRegistered"))
    assert len(await history.newest(limit=0)) == 0
    assert await history.newer() == []
    await interleave(node, 4, first=10)
    assert [env.subject for _, env in await history.newer()] == ["product-s10", "product-s12"]
    assert await history.newer() == []


@settings(max_examples=15, deadline=None)
@given(count=st.integers(0, 40), limit=st.integers(0, 45), every=st.integers(1, 4))
async def test_the_newest_matching_events_are_the_tail_of_the_filtered_log(
    count: int, limit: int, every: int
) -> None:
    """Reading backwards in chunks finds what filtering the whole log would."""
    config = Settings.load(
        environ={}, events_url="memory://", reads_url="memory://", transport_url="memory://"
    )
    node = Node(config, [inventory], roles=())
    rt = node.runtime("inventory")
    for backend in node.factory.started():
        await backend.start()
    try:
        for i in range(count):
            who = (
                CLERK
                if i % every
                else MessageContext(principal=Principal("bob", frozenset({"staff"})))
            )
            await rt.commands.dispatch(RegisterProduct(sku=f"s{i}", name="P", price_cents=1), who)
        everything = await rt.events.read_all(0, 1000)
        expected = [e.id for e in everything if e.principal.get("subject") == "bob"]
        found = await History(node, EventFilter(principal="bob")).newest(limit)
        assert [env.id for _, env in found] == (expected[-limit:] if limit else [])
    finally:
        await node.stop()
