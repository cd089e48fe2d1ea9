"""Orders' query handlers, served from its read models only: wired in ``service.py``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from bicameral import NotFoundError, ReadModel
from shop.bounds import Money, Price, Units
from shop.orders.messages import GetOrder, ListCustomerOrders, Reason, Status

__all__ = ["LineView", "OrderList", "OrderView", "get_order", "list_customer_orders"]


class LineView(BaseModel):
    sku: str
    name: str | None
    quantity: Units
    unit_price_cents: Price | None


class OrderView(BaseModel):
    order_id: str
    customer_id: str
    status: Status
    reason: Reason | None
    lines: list[LineView]
    total_cents: Money


class OrderList(BaseModel):
    items: list[OrderView]


async def _view(doc: dict[str, Any], reads: ReadModel) -> OrderView:
    lines: list[LineView] = []
    for line in doc["lines"]:
        if not doc["priced"]:
            product = await reads.get("catalogue", line["sku"])
            if product is not None:
                line = line | {"name": product["name"], "unit_price_cents": product["price_cents"]}
        lines.append(LineView.model_validate(line))
    total = sum(line.quantity * (line.unit_price_cents or 0) for line in lines)
    return OrderView.model_validate(doc | {"lines": lines, "total_cents": total})


async def get_order(query: GetOrder, reads: ReadModel) -> OrderView:
    """One order; its lines' names and prices are inventory's; 404 for an unknown order."""
    doc = await reads.get("orders", query.order_id)
    if doc is None:
        raise NotFoundError(f"no order {query.order_id!r}")
    return await _view(doc, reads)


async def list_customer_orders(query: ListCustomerOrders, reads: ReadModel) -> OrderList:
    """A customer's orders, by order id."""
    docs = await reads.find("orders", "customer_id", query.customer_id)
    return OrderList(items=[await _view(doc, reads) for doc in docs])
