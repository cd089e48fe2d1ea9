"""Many customers order the same scarce products at once; afterwards every invariant holds."""

from __future__ import annotations

import asyncio
import random

import httpx
import pytest

from bicameral.runtime.node import Node
from tests.e2e.order_flow.api import answer, command, ok, order, product
from tests.e2e.order_flow.folds import check_shop
from tests.e2e.order_flow.settling import settle

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


async def cancel(client: httpx.AsyncClient, order_id: str) -> httpx.Response:
    """Cancels an order as an admin, naming its customer (the id's first part)."""
    customer = order_id.split("-")[0]
    return await command(client, "orders", "CancelOrder", order_id=order_id, customer_id=customer)


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
        *(cancel(client, o) for o in to_cancel),
        *(cancel(client, o) for o in to_cancel),
    )
    assert sorted(r.status_code for r in results) == [200] * len(to_cancel) + [409] * len(to_cancel)
    await settle(node)
    outcomes = await check_shop(client, node, order_ids)
    assert ("CANCELLED", None) in outcomes
    assert {r for s, r in outcomes if s == "REJECTED"} >= {"out_of_stock", "insufficient_funds"}
