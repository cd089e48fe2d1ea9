"""Orders' write model: the Order aggregate, which is also the order flow's process state.

``PENDING`` -> ``CONFIRMED`` (stock reserved, then paid) or ``REJECTED``; only a confirmed order
may be cancelled. Steps that arrive late or twice change nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from bicameral import Aggregate, Event, InvalidMessageError, NotFoundError, RuleViolation
from shop.orders.messages import (
    OrderCancelled,
    OrderConfirmed,
    OrderIdTaken,
    OrderLine,
    OrderPlaced,
    OrderRejected,
    OrderReserved,
    PricedLine,
    Reason,
    Status,
)

__all__ = ["Order", "OrderIdIndex"]


class Order(Aggregate):
    """One customer's order and where it is in the flow; its id is ``order_key(customer, id)``."""

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.customer_id, _, self.order_id = id.partition("/")
        self.status: Status = "PENDING"
        self.lines: list[OrderLine] = []
        self.priced: list[PricedLine] | None = None
        self.total_cents = 0

    def place(self, lines: Sequence[OrderLine]) -> None:
        """Places the order; refuses an order id the customer has used already."""
        if self.exists:
            raise RuleViolation(f"order {self.order_id!r} already exists")
        self.record(
            OrderPlaced(order_id=self.order_id, customer_id=self.customer_id, lines=list(lines))
        )

    def reserved(self, lines: Sequence[PricedLine], total_cents: int) -> None:
        """Notes the stock held for a pending order; the customer is to be charged next."""
        if self.status == "PENDING" and self.priced is None:
            self.record(
                OrderReserved(
                    order_id=self.order_id,
                    customer_id=self.customer_id,
                    lines=list(lines),
                    total_cents=total_cents,
                )
            )

    def confirm(self) -> None:
        """Confirms a pending, reserved order."""
        if self.status == "PENDING" and self.priced is not None:
            self.record(
                OrderConfirmed(
                    order_id=self.order_id,
                    customer_id=self.customer_id,
                    total_cents=self.total_cents,
                )
            )

    def reject(self, reason: Reason) -> None:
        """Rejects a pending order; says whether stock was reserved for it."""
        if self.status == "PENDING":
            self.record(
                OrderRejected(
                    order_id=self.order_id,
                    customer_id=self.customer_id,
                    reason=reason,
                    reserved=self.priced is not None,
                )
            )

    def cancel(self) -> None:
        """Cancels a confirmed order; 404 if unknown, 409 unless confirmed."""
        if not self.exists:
            raise NotFoundError(f"no order {self.order_id!r}")
        if self.status != "CONFIRMED":
            raise RuleViolation(
                f"order {self.order_id!r} is {self.status}; only CONFIRMED can cancel"
            )
        self.record(
            OrderCancelled(
                order_id=self.order_id, customer_id=self.customer_id, total_cents=self.total_cents
            )
        )

    def apply(self, event: Event) -> None:
        """Changes state for one event."""
        match event:
            case OrderPlaced(lines=lines):
                self.lines = list(lines)
            case OrderReserved(lines=lines, total_cents=total):
                self.priced, self.total_cents = list(lines), total
            case OrderConfirmed():
                self.status = "CONFIRMED"
            case OrderRejected():
                self.status = "REJECTED"
            case OrderCancelled():
                self.status = "CANCELLED"


class OrderIdIndex(Aggregate):
    """The customers who placed an order under one id (its aggregate id), so that an admin may
    name an order by its id alone. A customer never reads it: it belongs to no customer, so the
    bus hands a customer a blank one."""

    stream_prefix = "order-id-"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.customers: list[str] = []

    def take(self, customer_id: str) -> None:
        """Notes that ``customer_id`` placed an order under this id (once)."""
        if customer_id not in self.customers:
            self.record(OrderIdTaken(order_id=self.id, customer_id=customer_id))

    def customer(self, caller: str) -> str:
        """Returns the customer whose order this id names for ``caller``: the caller's own,
        else the one customer who used it; several: InvalidMessageError naming customer_id."""
        if caller in self.customers or not self.customers:
            return caller
        if len(self.customers) == 1:
            return self.customers[0]
        raise InvalidMessageError(
            f"several customers have an order {self.id!r}: name its customer_id",
            [
                {
                    "loc": ["body", "customer_id"],
                    "msg": "several customers have an order of this id",
                    "type": "missing",
                }
            ],
        )

    def apply(self, event: Event) -> None:
        """Changes state for one event."""
        match event:
            case OrderIdTaken(customer_id=customer_id):
                self.customers.append(customer_id)
