"""Payments' command handlers: plain functions, wired in ``service.py``."""

from __future__ import annotations

from shop.payments.domain import Account
from shop.payments.messages import ChargeCustomer, DepositFunds, RefundCustomer

__all__ = ["charge_customer", "deposit_funds", "refund_customer"]


def deposit_funds(cmd: DepositFunds, account: Account) -> None:
    """Adds money to a customer's balance."""
    account.deposit(cmd.amount_cents)


def charge_customer(cmd: ChargeCustomer, account: Account) -> None:
    """Captures an order's payment, or declines it for insufficient funds."""
    account.charge(cmd.order_id, cmd.amount_cents)


def refund_customer(cmd: RefundCustomer, account: Account) -> None:
    """Refunds a cancelled order's captured payment."""
    account.refund(cmd.order_id)
