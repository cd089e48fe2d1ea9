"""Orders' public contract: its commands, queries and events.

``OrderPlaced``, ``OrderReserved``, ``OrderConfirmed``, ``OrderRejected`` and ``OrderCancelled``
drive the other services; the internal commands are sent only by orders' own reactions to
inventory's and payments' events.

Order ids are per customer: an order is named by its customer and its id (``order_key``), so
alice's ``order-1`` and bob's ``order-1`` are two orders, and whether another customer used an
id never changes what a customer is answered.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bicameral import Command, Event, Query
from shop.bounds import MAX_LINES, Money, Price, Units

__all__ = [
    "CancelOrder",
    "ConfirmOrder",
    "GetOrder",
    "Id",
    "IndexOrderId",
    "ListCustomerOrders",
    "OrderCancelled",
    "OrderConfirmed",
    "OrderIdTaken",
    "OrderLine",
    "OrderPlaced",
    "OrderRejected",
    "OrderReserved",
    "PlaceOrder",
    "PricedLine",
    "Reason",
    "RecordReservation",
    "RejectOrder",
    "Status",
    "order_key",
]

Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
Status = Literal["PENDING", "CONFIRMED", "REJECTED", "CANCELLED"]
Reason = Literal["out_of_stock", "insufficient_funds", "unknown_product"]


def order_key(customer_id: str, order_id: str) -> str:
    """Returns the key of a customer's order: its stream and read-model document
    (``/`` is in no id, so no two pairs share a key)."""
    return f"{customer_id}/{order_id}"


class OrderLine(BaseModel):
    """Units of one product a customer asks for."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sku: Id
    quantity: Units


class PricedLine(BaseModel):
    """Units of one product with the name and unit price inventory reserved them at."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sku: str
    name: str
    quantity: Units
    unit_price_cents: Price


class PlaceOrder(Command):
    """Places a new order; it is PENDING until stock and payment decide it."""

    order_id: Id
    customer_id: Id
    lines: Annotated[list[OrderLine], Field(min_length=1, max_length=MAX_LINES)]

    @field_validator("lines")
    @classmethod
    def _one_line_per_sku(cls, lines: list[OrderLine]) -> list[OrderLine]:
        skus = [line.sku for line in lines]
        if len(set(skus)) != len(skus):
            raise ValueError("each sku may appear on one line only")
        return lines


class CancelOrder(Command):
    """Cancels a CONFIRMED order: its stock goes back on hand and its money is refunded.

    ``customer_id`` names the order's customer; without it, the caller's own order.
    """

    order_id: Id
    customer_id: Id | None = None


class RecordReservation(Command):
    """Notes the stock inventory reserved for an order, at its prices (internal)."""

    order_id: Id
    customer_id: Id
    lines: Annotated[list[PricedLine], Field(max_length=MAX_LINES)]
    total_cents: Money


class ConfirmOrder(Command):
    """Confirms a reserved and paid order (internal)."""

    order_id: Id
    customer_id: Id


class RejectOrder(Command):
    """Rejects a pending order for a reason (internal)."""

    order_id: Id
    customer_id: Id
    reason: Reason


class IndexOrderId(Command):
    """Notes that a customer placed an order under an id, so an admin may name the order by
    its id alone (internal: sent by orders' reaction to its own ``OrderPlaced``)."""

    order_id: Id
    customer_id: Id


class GetOrder(Query):
    """One order with its lines, status and total.

    ``customer_id`` names the order's customer; without it, the one order of that id the
    caller may see (a customer sees only their own).
    """

    order_id: Id
    customer_id: Id | None = None


class ListCustomerOrders(Query):
    """A customer's orders, by order id."""

    customer_id: Id


class OrderPlaced(Event, name="orders.OrderPlaced"):
    order_id: str
    customer_id: str
    lines: list[OrderLine]


class OrderReserved(Event, name="orders.OrderReserved"):
    """Inventory holds the order's stock at these prices; the customer is to be charged."""

    order_id: str
    customer_id: str
    lines: list[PricedLine]
    total_cents: Money


class OrderConfirmed(Event, name="orders.OrderConfirmed"):
    order_id: str
    customer_id: str
    total_cents: Money


class OrderRejected(Event, name="orders.OrderRejected"):
    """The order failed; ``reserved`` says whether inventory holds stock to release."""

    order_id: str
    customer_id: str
    reason: Reason
    reserved: bool


class OrderCancelled(Event, name="orders.OrderCancelled"):
    order_id: str
    customer_id: str
    total_cents: Money


class OrderIdTaken(Event, name="orders.OrderIdTaken"):
    """A customer placed an order under this id (the id's index stream)."""

    order_id: str
    customer_id: str
