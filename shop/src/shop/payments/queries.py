"""Payments' query handlers, served from its read model only: wired in ``service.py``."""

from __future__ import annotations

from pydantic import BaseModel

from bicameral import ReadModel
from shop.bounds import Money
from shop.payments.messages import GetBalance

__all__ = ["BalanceView", "get_balance"]


class BalanceView(BaseModel):
    customer_id: str
    balance_cents: Money


async def get_balance(query: GetBalance, reads: ReadModel) -> BalanceView:
    """A customer's balance; 0 for a customer with no deposits."""
    doc = await reads.get("balances", query.customer_id)
    return BalanceView(
        customer_id=query.customer_id, balance_cents=doc["balance_cents"] if doc else 0
    )
