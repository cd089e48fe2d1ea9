"""Orders' query handlers, served from its read models only: wired in ``service.py``."""

from __future__ import annotations

from pydantic import BaseModel

from bicameral import NotFoundError, ReadModel
from shop.orders.messages import GetOrder, ListCustomerOrders, Reason, Status
from shop.orders.projections import CatalogueEntry, LineView, Order

__all__ = ["LineView", "OrderList", "OrderView", "get_order", "list_customer_orders"]


class OrderView(BaseModel):
    order_id: str
    customer_id: str
    status: Status
    reason: Reason | None
    lines: list[LineView]
    total_cents: int


class OrderList(BaseModel):
    items: list[OrderView]


async def _view(order: Order, reads: ReadModel) -> OrderView:
    lines: list[LineView] = []
    for line in order.lines:
        if not order.priced:
            product: CatalogueEntry | None = await reads.get("catalogue", line.sku)
            if product is not None:
                line = line.model_copy(
                    update={"name": product.name, "unit_price_cents": product.price_cents}
                )
        lines.append(line)
    total = sum(line.quantity * (line.unit_price_cents or 0) for line in lines)
    return OrderView(
        order_id=order.order_id,
        customer_id=order.customer_id,
        status=order.status,
        reason=order.reason,
        lines=lines,
        total_cents=total,
    )


async def get_order(query: GetOrder, reads: ReadModel) -> OrderView:
    """One order; its lines' names and prices are inventory's; 404 for an unknown order."""
    order: Order | None = await reads.get("orders", query.order_id)
    if order is None:
        raise NotFoundError(f"no order {query.order_id!r}")
    return await _view(order, reads)


async def list_customer_orders(query: ListCustomerOrders, reads: ReadModel) -> OrderList:
    """A customer's orders, by order id."""
    found: list[Order] = await reads.find("orders", "customer_id", query.customer_id)
    return OrderList(items=[await _view(order, reads) for order in found])
