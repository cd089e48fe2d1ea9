"""Orders' query handlers, served from its read models only: wired in ``service.py``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from bicameral import InvalidMessageError, NotFoundError, ReadModel
from shop.bounds import Money, Price, Units
from shop.orders.messages import GetOrder, ListCustomerOrders, Reason, Status, order_key

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
    """One order; its lines' names and prices are inventory's; 404 for an unknown order.

    Without ``customer_id``: the one order of that id among those the caller may see (a
    customer sees only their own); 422 naming ``customer_id`` when several customers' are seen.
    """
    if query.customer_id is not None:
        found = await reads.get("orders", order_key(query.customer_id, query.order_id))
        docs = [found] if found is not None else []
    else:
        docs = await reads.find("orders", "order_id", query.order_id)
    if not docs:
        raise NotFoundError(f"no order {query.order_id!r}")
    if len(docs) > 1:
        raise InvalidMessageError(
            f"several customers have an order {query.order_id!r}: name its customer_id",
            [
                {
                    "loc": ["query", "customer_id"],
                    "msg": "several customers have an order of this id",
                    "type": "missing",
                }
            ],
        )
    return await _view(docs[0], reads)


async def list_customer_orders(query: ListCustomerOrders, reads: ReadModel) -> OrderList:
    """A customer's orders, by order id."""
    docs = await reads.find("orders", "customer_id", query.customer_id)
    return OrderList(items=[await _view(doc, reads) for doc in docs])
