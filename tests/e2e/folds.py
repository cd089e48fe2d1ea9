"""The shop's state folded straight from its event logs, to check read models and invariants."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bicameral import Envelope
from bicameral.runtime.node import Node


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
