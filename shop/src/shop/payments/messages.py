"""Payments' public contract: its commands, queries and events.

``ChargeCustomer`` and ``RefundCustomer`` are internal: payments' reactions to the orders
service's events send them. ``PaymentCaptured`` and ``PaymentDeclined`` are what orders reacts to.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from bicameral import Command, Event, Query
from shop.bounds import Amount, Money

__all__ = [
    "ChargeCustomer",
    "DepositFunds",
    "FundsDeposited",
    "GetBalance",
    "Id",
    "PaymentCaptured",
    "PaymentDeclined",
    "PaymentRefunded",
    "RefundCustomer",
]

Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


class DepositFunds(Command):
    """Adds money to a customer's balance."""

    customer_id: Id
    amount_cents: Amount


class ChargeCustomer(Command):
    """Takes an order's total from a customer's balance, or declines (internal)."""

    customer_id: Id
    order_id: Id
    amount_cents: Money


class RefundCustomer(Command):
    """Gives a cancelled order's captured money back (internal)."""

    customer_id: Id
    order_id: Id


class GetBalance(Query):
    """A customer's balance (0 for a customer with no deposits)."""

    customer_id: Id


class FundsDeposited(Event, name="payments.FundsDeposited"):
    customer_id: str
    amount_cents: Money


class PaymentCaptured(Event, name="payments.PaymentCaptured"):
    customer_id: str
    order_id: str
    amount_cents: Money


class PaymentDeclined(Event, name="payments.PaymentDeclined"):
    customer_id: str
    order_id: str
    amount_cents: Money
    reason: Literal["insufficient_funds"]


class PaymentRefunded(Event, name="payments.PaymentRefunded"):
    customer_id: str
    order_id: str
    amount_cents: Money
