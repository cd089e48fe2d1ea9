"""Payments' query handlers, served from its read model only: wired in ``service.py``."""

from __future__ import annotations

from bicameral import ReadModel
from shop.payments.messages import GetBalance
from shop.payments.projections import BalanceView

__all__ = ["BalanceView", "get_balance"]


async def get_balance(query: GetBalance, reads: ReadModel) -> BalanceView:
    """A customer's balance; 0 for a customer with no deposits."""
    balance: BalanceView | None = await reads.get("balances", query.customer_id)
    return balance or BalanceView(customer_id=query.customer_id, balance_cents=0)
