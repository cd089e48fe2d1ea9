"""Bounded integers for messages: declare an amount's range once, and JSON schemas say it.

A JSON reader keeps integers exactly only up to ``MAX_SAFE_INTEGER`` (2^53 - 1): a read model
that adds amounts up must never get past it. ``Money`` and ``Quantity`` are strict integers
(a JSON string or boolean is refused, not converted) with an upper bound far enough below that
limit that several of them add up safely; the bound appears in the schema as ``maximum``::

    class DepositFunds(Command):
        amount_cents: Annotated[Money, Field(gt=0)]

    Price = Annotated[Money, Field(le=10_000_000)]    # a tighter bound, declared once

A bound on each amount does not bound a running total: the aggregate that keeps one (a balance,
the stock on hand) refuses the change that would take it past its own limit (``MAX_MONEY`` or
``MAX_QUANTITY`` suit), so every read model folded from its events stays below it too.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, Strict

__all__ = ["MAX_MONEY", "MAX_QUANTITY", "MAX_SAFE_INTEGER", "Money", "Quantity"]

MAX_SAFE_INTEGER = 2**53 - 1
"""The largest integer every JSON reader keeps exactly (9,007,199,254,740,991)."""

MAX_MONEY = 10**15
"""The largest ``Money``: 10^15 minor units (cents), so nine of them add up safely."""

MAX_QUANTITY = 10**9
"""The largest ``Quantity``: a billion units."""

Money = Annotated[int, Strict(), Field(ge=0, le=MAX_MONEY)]
"""An amount of money in minor units (cents): a strict integer in ``[0, MAX_MONEY]``."""

Quantity = Annotated[int, Strict(), Field(ge=0, le=MAX_QUANTITY)]
"""A number of units: a strict integer in ``[0, MAX_QUANTITY]``."""
