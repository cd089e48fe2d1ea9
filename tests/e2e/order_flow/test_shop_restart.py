"""``bicameral up`` killed with SIGKILL in the middle of the order flow, then started again."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bicameral.runtime.node import Node
from tests.e2e.conftest import admin_headers
from tests.e2e.order_flow.api import FINAL, answer, ok, product
from tests.e2e.order_flow.folds import check_shop
from tests.e2e.order_flow.processes import Process, free_port
from tests.e2e.order_flow.settling import settle


@pytest.fixture
def shop_process(tmp_path: Path) -> Iterator[Process]:
    running = Process(tmp_path / "data", "up", port=free_port())
    try:
        yield running
    finally:
        running.stop()


async def _place(http: httpx.AsyncClient, order_id: str, customer: str, sku: str) -> bool:
    """Places an order with an Idempotency-Key; returns False when the server was unreachable."""
    body = {"order_id": order_id, "customer_id": customer, "lines": [{"sku": sku, "quantity": 1}]}
    try:
        response = await http.post(
            "/orders/commands/PlaceOrder", json=body, headers={"Idempotency-Key": order_id}
        )
    except httpx.TransportError:
        return False
    assert response.status_code == 200, response.text
    return True


async def test_the_order_flow_survives_sigkill_without_double_effects(
    shop_process: Process, observer: Node
) -> None:
    await shop_process.start()
    customers = [f"k{n}" for n in range(12)]
    order_ids = [f"{c}-{k}" for c in customers for k in range(3)]
    async with httpx.AsyncClient(
        base_url=shop_process.url, timeout=10, headers=admin_headers(shop_process.data_dir)
    ) as http:
        await product(http, "bolt", price=300, stock=20)
        await product(http, "nut", price=100, stock=8)
        for n, customer in enumerate(customers):
            await ok(
                http, "payments", "DepositFunds", customer_id=customer, amount_cents=250 * n + 50
            )
        sent: dict[str, bool] = {}
        halfway = asyncio.Event()

        async def place_all() -> None:
            for n, order_id in enumerate(order_ids):
                sent[order_id] = await _place(
                    http, order_id, order_id.split("-")[0], "bolt" if n % 2 else "nut"
                )
                if sum(sent.values()) >= len(order_ids) // 2:
                    halfway.set()

        placing = asyncio.create_task(place_all())
        await halfway.wait()
        shop_process.kill()
        await placing
    assert not all(sent.values()), "the kill should interrupt the flow"

    await shop_process.start()
    async with httpx.AsyncClient(
        base_url=shop_process.url, timeout=10, headers=admin_headers(shop_process.data_dir)
    ) as http:
        for n, order_id in enumerate(order_ids):
            assert await _place(http, order_id, order_id.split("-")[0], "bolt" if n % 2 else "nut")
        for _ in range(300):
            statuses = [
                (await answer(http, "orders", "GetOrder", order_id=o))["status"] for o in order_ids
            ]
            if set(statuses) <= FINAL:
                break
            await asyncio.sleep(0.1)
        confirmed = [o for o, s in zip(order_ids, statuses, strict=True) if s == "CONFIRMED"]
        for order_id in confirmed[:3]:
            customer = order_id.split("-")[0]
            await ok(http, "orders", "CancelOrder", order_id=order_id, customer_id=customer)
        await observer.start()
        await settle(observer)
        outcomes = await check_shop(http, observer, order_ids)
    assert {("CONFIRMED", None), ("CANCELLED", None)} <= outcomes
