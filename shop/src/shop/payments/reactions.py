"""Payments' part of the order flow: the orders service's events turned into payments' commands."""

from __future__ import annotations

from shop.orders.messages import OrderCancelled, OrderReserved
from shop.payments.messages import ChargeCustomer, RefundCustomer

__all__ = ["charge_reserved_order", "refund_cancelled_order"]


def charge_reserved_order(event: OrderReserved) -> ChargeCustomer:
    """Charges the customer once an order's stock is reserved."""
    return ChargeCustomer(
        customer_id=event.customer_id, order_id=event.order_id, amount_cents=event.total_cents
    )


def refund_cancelled_order(event: OrderCancelled) -> RefundCustomer:
    """Refunds a cancelled order."""
    return RefundCustomer(customer_id=event.customer_id, order_id=event.order_id)
