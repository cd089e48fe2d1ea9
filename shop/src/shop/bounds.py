"""The shop's bounds, shared by every service's contract: no total it keeps can pass 2^53 - 1.

- A receipt of stock or an order line: at most ``MAX_UNITS`` units; an order: ``MAX_LINES``
  lines; a unit price: at most ``MAX_PRICE_CENTS``. So an order's total is at most
  100 x 10^6 x 10^7 = 10^15 cents, which is ``MAX_MONEY``.
- A product's stock on hand plus the units sold to orders that may still be cancelled stays at
  most ``MAX_QUANTITY`` (10^9): a receipt that would pass it is refused (409), so the stock
  figures of the read model (on hand, reserved, available) stay below it.
- A customer's balance plus the payments that may still be refunded stays at most ``MAX_MONEY``
  (10^15 cents): a deposit that would pass it is refused (409), so balances stay below it.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from bicameral import MAX_MONEY, MAX_QUANTITY, Money, Quantity

__all__ = [
    "MAX_BALANCE_CENTS",
    "MAX_LINES",
    "MAX_PRICE_CENTS",
    "MAX_STOCK",
    "MAX_UNITS",
    "Amount",
    "Money",
    "Price",
    "Quantity",
    "Units",
]

MAX_UNITS = 1_000_000
MAX_LINES = 100
MAX_PRICE_CENTS = 10_000_000
MAX_STOCK = MAX_QUANTITY
MAX_BALANCE_CENTS = MAX_MONEY

Units = Annotated[Quantity, Field(gt=0, le=MAX_UNITS)]
"""Units in one receipt or one order line."""

Price = Annotated[Money, Field(le=MAX_PRICE_CENTS)]
"""A unit price in cents."""

Amount = Annotated[Money, Field(gt=0)]
"""A positive amount of money in cents (a deposit)."""
