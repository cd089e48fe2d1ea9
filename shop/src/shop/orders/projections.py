"""Orders' read models: the orders themselves, and inventory's catalogue folded in for names.

An order document holds inventory's names and prices once its stock is reserved; until then (or
when it never is) the ``catalogue`` read model, folded from inventory's events, supplies them.
Order documents are keyed by ``order_key(customer_id, order_id)``: order ids are per customer
(version 2; version 1 keyed them by order id alone).
"""

from __future__ import annotations

from typing import Any

from bicameral import Projection, View
from shop.inventory.messages import ProductRegistered
from shop.orders.messages import (
    OrderCancelled,
    OrderConfirmed,
    OrderPlaced,
    OrderRejected,
    OrderReserved,
    order_key,
)

__all__ = ["catalogue", "orders"]

orders = Projection("orders", collections={"orders": ["customer_id", "order_id"]}, version=2)
catalogue = Projection("catalogue", collections={"catalogue": []})


@orders.on(OrderPlaced)
def placed(event: OrderPlaced, view: View) -> None:
    view.put(
        "orders",
        order_key(event.customer_id, event.order_id),
        {
            "order_id": event.order_id,
            "customer_id": event.customer_id,
            "status": "PENDING",
            "reason": None,
            "lines": [
                {"sku": line.sku, "name": None, "quantity": line.quantity, "unit_price_cents": None}
                for line in event.lines
            ],
            "priced": False,
        },
    )


def _order(event: Any) -> list[tuple[str, str]]:
    """Names the order document an event changes (read in one batch)."""
    return [("orders", order_key(event.customer_id, event.order_id))]


async def _update(view: View, event: Any, **fields: object) -> None:
    key = order_key(event.customer_id, event.order_id)
    doc = await view.get("orders", key)
    if doc is not None:
        view.put("orders", key, doc | fields)


@orders.on(OrderReserved, prefetch=_order)
async def reserved(event: OrderReserved, view: View) -> None:
    lines = [line.model_dump() for line in event.lines]
    await _update(view, event, lines=lines, priced=True)


@orders.on(OrderConfirmed, prefetch=_order)
async def confirmed(event: OrderConfirmed, view: View) -> None:
    await _update(view, event, status="CONFIRMED")


@orders.on(OrderRejected, prefetch=_order)
async def rejected(event: OrderRejected, view: View) -> None:
    await _update(view, event, status="REJECTED", reason=event.reason)


@orders.on(OrderCancelled, prefetch=_order)
async def cancelled(event: OrderCancelled, view: View) -> None:
    await _update(view, event, status="CANCELLED")


@catalogue.on(ProductRegistered)
def product_registered(event: ProductRegistered, view: View) -> None:
    view.put(
        "catalogue",
        event.sku,
        {"sku": event.sku, "name": event.name, "price_cents": event.price_cents},
    )
