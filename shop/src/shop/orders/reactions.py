"""Orders' steps of the order flow: inventory's and payments' answers turned into orders' commands.

The flow, as events: ``orders.OrderPlaced`` -> inventory reserves every line or none ->
``orders.OrderReserved`` -> payments charges -> ``orders.OrderConfirmed`` (inventory sells the
stock) or ``orders.OrderRejected`` (inventory releases what it held).
"""

from __future__ import annotations

from shop.inventory.messages import StockReservationMade, StockReservationRefused
from shop.orders.messages import (
    ConfirmOrder,
    IndexOrderId,
    OrderPlaced,
    PricedLine,
    RecordReservation,
    RejectOrder,
)
from shop.payments.messages import PaymentCaptured, PaymentDeclined

__all__ = ["confirm_paid", "index_placed", "record_reserved", "reject_refused", "reject_unpaid"]


def index_placed(event: OrderPlaced) -> IndexOrderId:
    """Notes the customer of a new order under its id (orders' own event: a policy, not a step
    of the flow)."""
    return IndexOrderId(order_id=event.order_id, customer_id=event.customer_id)


def record_reserved(event: StockReservationMade) -> RecordReservation:
    """Notes the reservation, at inventory's names and prices."""
    return RecordReservation(
        order_id=event.order_id,
        customer_id=event.customer_id,
        lines=[PricedLine.model_validate(line.model_dump()) for line in event.lines],
        total_cents=event.total_cents,
    )


def reject_refused(event: StockReservationRefused) -> RejectOrder:
    """Rejects an order inventory could not reserve."""
    return RejectOrder(order_id=event.order_id, customer_id=event.customer_id, reason=event.reason)


def confirm_paid(event: PaymentCaptured) -> ConfirmOrder:
    """Confirms a paid order."""
    return ConfirmOrder(order_id=event.order_id, customer_id=event.customer_id)


def reject_unpaid(event: PaymentDeclined) -> RejectOrder:
    """Rejects an order the customer could not pay."""
    return RejectOrder(order_id=event.order_id, customer_id=event.customer_id, reason=event.reason)
