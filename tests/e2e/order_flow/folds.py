"""The shop's state folded straight from its event logs, to check read models and invariants."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from bicameral import Envelope
from bicameral.runtime.node import Node
from tests.e2e.order_flow.api import FINAL, answer


async def log(node: Node, service: str) -> list[Envelope]:
    """Returns every event of a service's store, in position order."""
    store = node.runtime(service).events
    found: list[Envelope] = []
    while batch := await store.read_all(found[-1].position if found else 0, 1000):
        found.extend(batch)
    return found


@dataclass
class Stock:
    name: str
    price_cents: int
    received: int = 0
    reserved: int = 0
    sold: int = 0
    returned: int = 0

    @property
    def on_hand(self) -> int:
        return self.received - self.sold + self.returned


@dataclass
class Money:
    balances: dict[str, int] = field(default_factory=dict)
    deposits: int = 0
    captured: int = 0
    refunded: int = 0


def fold_inventory(events: list[Envelope]) -> dict[str, Stock]:
    """Returns each product's figures."""
    stock: dict[str, Stock] = {}
    for env in events:
        data, kind = env.data, env.type.split(".")[1]
        if kind == "ProductRegistered":
            stock[data["sku"]] = Stock(data["name"], data["price_cents"])
        elif kind == "StockReceived":
            stock[data["sku"]].received += data["quantity"]
        elif kind == "StockReserved":
            stock[data["sku"]].reserved += data["quantity"]
        elif kind == "StockReleased":
            stock[data["sku"]].reserved -= data["quantity"]
        elif kind == "StockSold":
            stock[data["sku"]].reserved -= data["quantity"]
            stock[data["sku"]].sold += data["quantity"]
        elif kind == "StockReturned":
            stock[data["sku"]].returned += data["quantity"]
    return stock


def fold_payments(events: list[Envelope]) -> Money:
    """Returns every balance and the money moved."""
    money = Money()
    for env in events:
        data, kind = env.data, env.type.split(".")[1]
        who = data["customer_id"]
        amount = data["amount_cents"]
        if kind == "FundsDeposited":
            money.deposits += amount
            money.balances[who] = money.balances.get(who, 0) + amount
        elif kind == "PaymentCaptured":
            money.captured += amount
            money.balances[who] = money.balances.get(who, 0) - amount
        elif kind == "PaymentRefunded":
            money.refunded += amount
            money.balances[who] = money.balances.get(who, 0) + amount
    return money


def fold_orders(events: list[Envelope], stock: dict[str, Stock]) -> dict[str, dict[str, Any]]:
    """Returns each order as GetOrder must answer it (names and prices from ``stock``)."""
    orders: dict[str, dict[str, Any]] = {}
    for env in events:
        data, kind = env.data, env.type.split(".")[1]
        if kind == "OrderPlaced":
            orders[data["order_id"]] = {
                "order_id": data["order_id"],
                "customer_id": data["customer_id"],
                "status": "PENDING",
                "reason": None,
                "lines": [
                    {
                        "sku": line["sku"],
                        "name": stock[line["sku"]].name if line["sku"] in stock else None,
                        "quantity": line["quantity"],
                        "unit_price_cents": (
                            stock[line["sku"]].price_cents if line["sku"] in stock else None
                        ),
                    }
                    for line in data["lines"]
                ],
            }
        elif kind == "OrderReserved":
            orders[data["order_id"]]["lines"] = data["lines"]
        elif kind == "OrderConfirmed":
            orders[data["order_id"]]["status"] = "CONFIRMED"
        elif kind == "OrderRejected":
            orders[data["order_id"]] |= {"status": "REJECTED", "reason": data["reason"]}
        elif kind == "OrderCancelled":
            orders[data["order_id"]]["status"] = "CANCELLED"
    for doc in orders.values():
        doc["total_cents"] = sum(
            line["quantity"] * (line["unit_price_cents"] or 0) for line in doc["lines"]
        )
    return orders


async def check_shop(
    client: httpx.AsyncClient, node: Node, order_ids: list[str]
) -> set[tuple[str, str | None]]:
    """Asserts every invariant of the settled shop and that each read model is its log's fold.

    Returns the (status, reason) outcomes of the orders.
    """
    await check_effects_once(node)
    stock = fold_inventory(await log(node, "inventory"))
    money = fold_payments(await log(node, "payments"))
    orders = fold_orders(await log(node, "orders"), stock)

    assert sorted(orders) == sorted(order_ids)
    assert all(doc["status"] in FINAL for doc in orders.values())

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
    return {(doc["status"], doc["reason"]) for doc in orders.values()}


async def check_effects_once(node: Node) -> None:
    """Asserts no step of the order flow took effect twice, in any service's log."""
    seen: set[tuple[str, ...]] = set()
    for service in ("inventory", "orders", "payments"):
        for env in await log(node, service):
            data = env.data
            if "order_id" not in data:
                continue
            effect = (env.type, data["order_id"], data.get("sku", ""))
            assert effect not in seen, f"{effect} happened twice"
            seen.add(effect)
