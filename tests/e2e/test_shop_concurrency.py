"""Many customers order the same scarce products at once; afterwards every invariant holds."""

from __future__ import annotations

import asyncio
import random

import httpx
import pytest

from bicameral.runtime.node import Node
from tests.e2e.api import FINAL, answer, command, ok, order, product
from tests.e2e.conftest import settle
from tests.e2e.folds import fold_inventory, fold_orders, fold_payments, log

SKUS = {"lamp": (2500, 6), "desk": (12000, 3), "chair": (4500, 5)}


async def _customer(http: httpx.AsyncClient, rng: random.Random, n: int) -> list[str]:
    customer = f"c{n}"
    await ok(
        http,
        "payments",
        "DepositFunds",
        customer_id=customer,
        amount_cents=rng.choice([2000, 8000, 30000]),
    )
    placed = []
    for k in range(2):
        lines = {sku: rng.randint(1, 3) for sku in rng.sample(sorted(SKUS), rng.randint(1, 2))}
        if rng.random() < 0.1:
            lines["ghost"] = 1
        await order(http, f"{customer}-{k}", customer, **lines)
        placed.append(f"{customer}-{k}")
    return placed


@pytest.mark.parametrize("seed", [1, 2])
async def test_concurrent_customers_leave_every_invariant_true(
    client: httpx.AsyncClient, node: Node, seed: int
) -> None:
    rng = random.Random(seed)
    for sku, (price, stock) in SKUS.items():
        await product(client, sku, price, stock)
    batches = await asyncio.gather(*(_customer(client, rng, n) for n in range(24)))
    order_ids = [o for batch in batches for o in batch]
    await settle(node)
    confirmed = [
        o
        for o in order_ids
        if (await answer(client, "orders", "GetOrder", order_id=o))["status"] == "CONFIRMED"
    ]
    assert confirmed, "the scenario should confirm some orders"
    to_cancel = rng.sample(confirmed, max(1, len(confirmed) // 3))
    results = await asyncio.gather(
        *(command(client, "orders", "CancelOrder", order_id=o) for o in to_cancel),
        *(command(client, "orders", "CancelOrder", order_id=o) for o in to_cancel),
    )
    assert sorted(r.status_code for r in results) == [200] * len(to_cancel) + [409] * len(to_cancel)
    await settle(node)
    await _check_invariants_and_read_models(client, node, order_ids)


async def _check_invariants_and_read_models(
    client: httpx.AsyncClient, node: Node, order_ids: list[str]
) -> None:
    stock = fold_inventory(await log(node, "inventory"))
    money = fold_payments(await log(node, "payments"))
    orders = fold_orders(await log(node, "orders"), stock)

    assert sorted(orders) == sorted(order_ids)
    assert all(doc["status"] in FINAL for doc in orders.values())
    outcomes = {(doc["status"], doc["reason"]) for doc in orders.values()}
    assert ("CANCELLED", None) in outcomes
    assert {r for s, r in outcomes if s == "REJECTED"} >= {"out_of_stock", "insufficient_funds"}

    for sku, figures in stock.items():
        got = await answer(client, "inventory", "GetProduct", sku=sku)
        assert got["available"] == got["on_hand"] - got["reserved"] >= 0
        assert got["reserved"] == figures.reserved == 0
        assert (
            got["on_hand"] == figures.on_hand == figures.received - figures.sold + figures.returned
        )
        assert got == {
            "sku": sku,
            "name": figures.name,
            "price_cents": figures.price_cents,
            "on_hand": figures.on_hand,
            "reserved": figures.reserved,
            "available": figures.on_hand - figures.reserved,
        }
        sold = [o for o in orders.values() if o["status"] in {"CONFIRMED", "CANCELLED"}]
        returned = [o for o in orders.values() if o["status"] == "CANCELLED"]
        assert figures.sold == sum(
            ln["quantity"] for o in sold for ln in o["lines"] if ln["sku"] == sku
        )
        assert figures.returned == sum(
            ln["quantity"] for o in returned for ln in o["lines"] if ln["sku"] == sku
        )
    listed = await answer(client, "inventory", "ListProducts")
    assert [p["sku"] for p in listed["items"]] == sorted(stock)

    assert sum(money.balances.values()) + money.captured - money.refunded == money.deposits
    kept = sum(o["total_cents"] for o in orders.values() if o["status"] == "CONFIRMED")
    assert money.captured - money.refunded == kept
    for customer, balance in money.balances.items():
        got = await answer(client, "payments", "GetBalance", customer_id=customer)
        assert got == {"customer_id": customer, "balance_cents": balance}
        assert balance >= 0

    for order_id, expected in orders.items():
        assert await answer(client, "orders", "GetOrder", order_id=order_id) == expected
    for customer in {doc["customer_id"] for doc in orders.values()}:
        listed = await answer(client, "orders", "ListCustomerOrders", customer_id=customer)
        mine = [orders[o] for o in sorted(orders) if orders[o]["customer_id"] == customer]
        assert listed == {"items": mine}
