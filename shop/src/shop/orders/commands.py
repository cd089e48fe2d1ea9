"""Orders' command handlers: plain functions, wired in ``service.py``."""

from __future__ import annotations

from shop.orders.domain import Order
from shop.orders.messages import (
    CancelOrder,
    ConfirmOrder,
    PlaceOrder,
    RecordReservation,
    RejectOrder,
)

__all__ = ["cancel_order", "confirm_order", "place_order", "record_reservation", "reject_order"]


def place_order(cmd: PlaceOrder, order: Order) -> None:
    """Places a new order as PENDING; 409 if the order id exists."""
    order.place(cmd.customer_id, cmd.lines)


def cancel_order(cmd: CancelOrder, order: Order) -> None:
    """Cancels a CONFIRMED order; 404 for an unknown order, 409 for any other status."""
    order.cancel()


def record_reservation(cmd: RecordReservation, order: Order) -> None:
    """Notes the stock inventory reserved for a pending order."""
    order.reserved(cmd.lines, cmd.total_cents)


def confirm_order(cmd: ConfirmOrder, order: Order) -> None:
    """Confirms a reserved, paid order."""
    order.confirm()


def reject_order(cmd: RejectOrder, order: Order) -> None:
    """Rejects a pending order."""
    order.reject(cmd.reason)
