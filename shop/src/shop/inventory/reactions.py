"""Inventory's steps of the order flow: orders' events turned into inventory's commands."""

from __future__ import annotations

from shop.inventory.messages import ReleaseStock, ReserveStock, ReturnStock, SellStock, StockLine
from shop.orders.messages import OrderCancelled, OrderConfirmed, OrderPlaced, OrderRejected

__all__ = ["release_rejected", "reserve_placed", "return_cancelled", "sell_confirmed"]


def reserve_placed(event: OrderPlaced) -> ReserveStock:
    """Reserves every line of a new order, or none."""
    lines = [StockLine(sku=line.sku, quantity=line.quantity) for line in event.lines]
    return ReserveStock(order_id=event.order_id, customer_id=event.customer_id, lines=lines)


def sell_confirmed(event: OrderConfirmed) -> SellStock:
    """Sells the stock held for a confirmed order."""
    return SellStock(order_id=event.order_id, customer_id=event.customer_id)


def release_rejected(event: OrderRejected) -> ReleaseStock | None:
    """Releases the stock held for a rejected order (the compensation), if any was held."""
    if not event.reserved:
        return None
    return ReleaseStock(order_id=event.order_id, customer_id=event.customer_id)


def return_cancelled(event: OrderCancelled) -> ReturnStock:
    """Puts a cancelled order's stock back on hand."""
    return ReturnStock(order_id=event.order_id, customer_id=event.customer_id)
