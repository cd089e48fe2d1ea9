"""Payments' write model: the Account aggregate; a balance never goes below zero."""

from __future__ import annotations

from bicameral import Aggregate, Event, RuleViolation
from shop.bounds import MAX_BALANCE_CENTS
from shop.payments.messages import (
    FundsDeposited,
    PaymentCaptured,
    PaymentDeclined,
    PaymentRefunded,
)

__all__ = ["Account"]


class Account(Aggregate):
    """A customer's money: deposits in, payments out, refunds back in; one charge per order."""

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.balance_cents = 0
        self.captured: dict[str, int] = {}
        self.settled: set[str] = set()

    def deposit(self, amount_cents: int) -> None:
        """Adds money to the balance; refuses to hold more than ``MAX_BALANCE_CENTS``.

        Money that may still be refunded counts as held, so no refund can pass the limit.
        """
        if amount_cents <= 0:
            raise RuleViolation("amount must be positive")
        if self.held_cents + amount_cents > MAX_BALANCE_CENTS:
            raise RuleViolation(
                f"a balance holds at most {MAX_BALANCE_CENTS} cents, refunds due included"
            )
        self.record(FundsDeposited(customer_id=self.id, amount_cents=amount_cents))

    @property
    def held_cents(self) -> int:
        """Returns the balance plus the captured payments that may still be refunded."""
        return self.balance_cents + sum(self.captured.values())

    def charge(self, order_id: str, amount_cents: int) -> None:
        """Captures an order's payment, or declines it; an order is charged at most once."""
        if order_id in self.settled:
            return
        if amount_cents > self.balance_cents:
            self.record(
                PaymentDeclined(
                    customer_id=self.id,
                    order_id=order_id,
                    amount_cents=amount_cents,
                    reason="insufficient_funds",
                )
            )
            return
        self.record(
            PaymentCaptured(customer_id=self.id, order_id=order_id, amount_cents=amount_cents)
        )

    def refund(self, order_id: str) -> None:
        """Gives back an order's captured payment (nothing if none is held)."""
        amount = self.captured.get(order_id)
        if amount is not None:
            self.record(
                PaymentRefunded(customer_id=self.id, order_id=order_id, amount_cents=amount)
            )

    def apply(self, event: Event) -> None:
        """Changes state for one event."""
        match event:
            case FundsDeposited(amount_cents=amount):
                self.balance_cents += amount
            case PaymentCaptured(order_id=order_id, amount_cents=amount):
                self.balance_cents -= amount
                self.captured[order_id] = amount
                self.settled.add(order_id)
            case PaymentDeclined(order_id=order_id):
                self.settled.add(order_id)
            case PaymentRefunded(order_id=order_id, amount_cents=amount):
                self.balance_cents += amount
                del self.captured[order_id]
