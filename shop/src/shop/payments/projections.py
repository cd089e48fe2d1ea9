"""Payments' read model: one balance document per customer."""

from __future__ import annotations

from typing import Any

from bicameral import Projection, View
from shop.payments.messages import FundsDeposited, PaymentCaptured, PaymentRefunded

__all__ = ["balances"]

balances = Projection("balances", collections={"balances": []})


def _balance(event: Any) -> list[tuple[str, str]]:
    """Names the balance document an event changes (read in one batch)."""
    return [("balances", event.customer_id)]


async def _add(view: View, customer_id: str, amount_cents: int) -> None:
    doc = await view.get("balances", customer_id) or {
        "customer_id": customer_id,
        "balance_cents": 0,
    }
    doc["balance_cents"] += amount_cents
    view.put("balances", customer_id, doc)


@balances.on(FundsDeposited, prefetch=_balance)
async def deposited(event: FundsDeposited, view: View) -> None:
    await _add(view, event.customer_id, event.amount_cents)


@balances.on(PaymentCaptured, prefetch=_balance)
async def captured(event: PaymentCaptured, view: View) -> None:
    await _add(view, event.customer_id, -event.amount_cents)


@balances.on(PaymentRefunded, prefetch=_balance)
async def refunded(event: PaymentRefunded, view: View) -> None:
    await _add(view, event.customer_id, event.amount_cents)
