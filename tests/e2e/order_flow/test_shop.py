"""The shop over HTTP, in one process on embedded defaults: the order flow end to end."""

from __future__ import annotations

import httpx

from bicameral.runtime.node import Node
from tests.e2e.order_flow.api import answer, command, ok, order, product, query
from tests.e2e.order_flow.settling import settle


async def test_get_order_with_the_place_order_token_answers_at_once(
    client: httpx.AsyncClient,
) -> None:
    await product(client, "mug", price=1250, stock=5)
    placed = await order(client, "o-1", "alice", mug=1)
    response = await query(
        client, "orders", "GetOrder", placed["consistency_token"], order_id="o-1"
    )
    assert response.status_code == 200
    assert response.json()["status"] in {"PENDING", "REJECTED"}


async def test_a_paid_order_is_confirmed_and_its_stock_sold(
    client: httpx.AsyncClient, node: Node
) -> None:
    await product(client, "mug", price=1250, stock=5)
    await ok(client, "payments", "DepositFunds", customer_id="alice", amount_cents=5000)
    await order(client, "o-1", "alice", mug=2)
    await settle(node)
    assert await answer(client, "orders", "GetOrder", order_id="o-1") == {
        "order_id": "o-1",
        "customer_id": "alice",
        "status": "CONFIRMED",
        "reason": None,
        "lines": [{"sku": "mug", "name": "Product mug", "quantity": 2, "unit_price_cents": 1250}],
        "total_cents": 2500,
    }
    mug = await answer(client, "inventory", "GetProduct", sku="mug")
    assert (mug["on_hand"], mug["reserved"], mug["available"]) == (3, 0, 3)
    balance = await answer(client, "payments", "GetBalance", customer_id="alice")
    assert balance == {"customer_id": "alice", "balance_cents": 2500}


async def test_an_order_beyond_the_stock_is_rejected_and_nothing_stays_reserved(
    client: httpx.AsyncClient, node: Node
) -> None:
    await product(client, "mug", price=100, stock=5)
    await product(client, "pen", price=100, stock=1)
    await ok(client, "payments", "DepositFunds", customer_id="alice", amount_cents=5000)
    await order(client, "o-1", "alice", mug=2, pen=2)
    await settle(node)
    got = await answer(client, "orders", "GetOrder", order_id="o-1")
    assert (got["status"], got["reason"]) == ("REJECTED", "out_of_stock")
    for sku, on_hand in (("mug", 5), ("pen", 1)):
        doc = await answer(client, "inventory", "GetProduct", sku=sku)
        assert (doc["on_hand"], doc["reserved"], doc["available"]) == (on_hand, 0, on_hand)
    balance = await answer(client, "payments", "GetBalance", customer_id="alice")
    assert balance["balance_cents"] == 5000


async def test_an_order_of_an_unknown_product_is_rejected(
    client: httpx.AsyncClient, node: Node
) -> None:
    await product(client, "mug", price=100, stock=5)
    await order(client, "o-1", "alice", mug=1, ghost=1)
    await settle(node)
    got = await answer(client, "orders", "GetOrder", order_id="o-1")
    assert (got["status"], got["reason"]) == ("REJECTED", "unknown_product")
    assert got["lines"][1] == {
        "sku": "ghost",
        "name": None,
        "quantity": 1,
        "unit_price_cents": None,
    }
    mug = await answer(client, "inventory", "GetProduct", sku="mug")
    assert mug["reserved"] == 0


async def test_an_unpaid_order_is_rejected_and_its_reservation_released(
    client: httpx.AsyncClient, node: Node
) -> None:
    await product(client, "mug", price=1000, stock=5)
    await ok(client, "payments", "DepositFunds", customer_id="bob", amount_cents=1500)
    await order(client, "o-1", "bob", mug=2)
    await settle(node)
    got = await answer(client, "orders", "GetOrder", order_id="o-1")
    assert (got["status"], got["reason"], got["total_cents"]) == (
        "REJECTED",
        "insufficient_funds",
        2000,
    )
    mug = await answer(client, "inventory", "GetProduct", sku="mug")
    assert (mug["on_hand"], mug["reserved"], mug["available"]) == (5, 0, 5)
    balance = await answer(client, "payments", "GetBalance", customer_id="bob")
    assert balance["balance_cents"] == 1500


async def test_cancelling_a_confirmed_order_returns_stock_and_money(
    client: httpx.AsyncClient, node: Node
) -> None:
    await product(client, "mug", price=1000, stock=5)
    await ok(client, "payments", "DepositFunds", customer_id="alice", amount_cents=3000)
    await order(client, "o-1", "alice", mug=2)
    await settle(node)
    await ok(client, "orders", "CancelOrder", order_id="o-1")
    await settle(node)
    got = await answer(client, "orders", "GetOrder", order_id="o-1")
    assert (got["status"], got["reason"]) == ("CANCELLED", None)
    mug = await answer(client, "inventory", "GetProduct", sku="mug")
    assert (mug["on_hand"], mug["reserved"], mug["available"]) == (5, 0, 5)
    balance = await answer(client, "payments", "GetBalance", customer_id="alice")
    assert balance["balance_cents"] == 3000
    again = await command(client, "orders", "CancelOrder", order_id="o-1")
    assert again.status_code == 409


async def test_only_a_confirmed_order_can_be_cancelled(
    client: httpx.AsyncClient, node: Node
) -> None:
    await product(client, "mug", price=1000, stock=1)
    await order(client, "o-1", "carol", mug=1)
    await settle(node)
    response = await command(client, "orders", "CancelOrder", order_id="o-1")
    assert response.status_code == 409
    assert response.headers["content-type"].startswith("application/problem+json")
    missing = await command(client, "orders", "CancelOrder", order_id="o-404")
    assert missing.status_code == 404


async def test_place_order_checks_shape_and_refuses_a_known_order_id(
    client: httpx.AsyncClient,
) -> None:
    await order(client, "o-1", "alice", mug=1)
    again = await command(
        client, "orders", "PlaceOrder", order_id="o-1", customer_id="alice", lines=[]
    )
    assert again.status_code == 422
    duplicate = await command(
        client,
        "orders",
        "PlaceOrder",
        order_id="o-1",
        customer_id="alice",
        lines=[{"sku": "mug", "quantity": 1}],
    )
    assert duplicate.status_code == 409
    zero = await command(
        client,
        "orders",
        "PlaceOrder",
        order_id="o-2",
        customer_id="alice",
        lines=[{"sku": "mug", "quantity": 0}],
    )
    assert zero.status_code == 422
    assert "lines.0.quantity" in zero.json()["detail"]


async def test_unknown_order_is_404_and_unknown_customer_has_no_money(
    client: httpx.AsyncClient,
) -> None:
    assert (await query(client, "orders", "GetOrder", order_id="nope")).status_code == 404
    balance = await answer(client, "payments", "GetBalance", customer_id="nobody")
    assert balance == {"customer_id": "nobody", "balance_cents": 0}
    assert await answer(client, "orders", "ListCustomerOrders", customer_id="nobody") == {
        "items": []
    }


async def test_the_saga_commands_are_not_on_the_http_api(client: httpx.AsyncClient) -> None:
    for service, name, body in (
        ("inventory", "ReserveStock", {"order_id": "o", "lines": [{"sku": "m", "quantity": 1}]}),
        ("inventory", "ReleaseStock", {"order_id": "o"}),
        ("payments", "ChargeCustomer", {"customer_id": "c", "order_id": "o", "amount_cents": 1}),
        ("orders", "ConfirmOrder", {"order_id": "o"}),
    ):
        response = await command(client, service, name, **body)
        assert response.status_code in {403, 404}, (name, response.text)
