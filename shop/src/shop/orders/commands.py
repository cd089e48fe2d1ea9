"""Orders' command handlers: plain functions, wired in ``service.py``."""

from __future__ import annotations

from bicameral import Principal, Repository
from shop.orders.domain import Order, OrderIdIndex
from shop.orders.messages import (
    CancelOrder,
    ConfirmOrder,
    IndexOrderId,
    PlaceOrder,
    RecordReservation,
    RejectOrder,
    order_key,
)

__all__ = [
    "cancel_order",
    "confirm_order",
    "index_order_id",
    "place_order",
    "record_reservation",
    "reject_order",
]


def place_order(cmd: PlaceOrder, order: Order) -> None:
    """Places a new order as PENDING; 409 if the customer has used the order id already."""
    order.place(cmd.lines)


async def cancel_order(
    cmd: CancelOrder,
    principal: Principal,
    orders: Repository[Order],
    ids: Repository[OrderIdIndex],
) -> None:
    """Cancels a CONFIRMED order of ``customer_id``; without it, the caller's own order of that
    id, or (for an admin) the one customer's who used it. 404 for an unknown order, 409 for any
    other status, 422 naming ``customer_id`` when several customers used the id."""
    customer = cmd.customer_id
    if customer is None:
        customer = (await ids.get(cmd.order_id)).customer(principal.subject)
    (await orders.get(order_key(customer, cmd.order_id))).cancel()


def index_order_id(cmd: IndexOrderId, ids: OrderIdIndex) -> None:
    """Notes which customer placed an order under an id."""
    ids.take(cmd.customer_id)


def record_reservation(cmd: RecordReservation, order: Order) -> None:
    """Notes the stock inventory reserved for a pending order."""
    order.reserved(cmd.lines, cmd.total_cents)


def confirm_order(cmd: ConfirmOrder, order: Order) -> None:
    """Confirms a reserved, paid order."""
    order.confirm()


def reject_order(cmd: RejectOrder, order: Order) -> None:
    """Rejects a pending order."""
    order.reject(cmd.reason)
