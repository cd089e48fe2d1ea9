"""The payments service: its declarations wired together in one place."""

from __future__ import annotations

from bicameral import Service
from shop.orders.messages import OrderCancelled, OrderReserved
from shop.payments import commands, queries, reactions
from shop.payments.messages import PaymentDeclined
from shop.payments.projections import balances

__all__ = ["payments"]

payments = Service("payments")
payments.events(PaymentDeclined)
payments.projection(balances)
payments.command(key="customer_id", retries=3)(commands.deposit_funds)
payments.command(key="customer_id", retries=10, internal=True)(commands.charge_customer)
payments.command(key="customer_id", retries=10, internal=True)(commands.refund_customer)
payments.query(reads=[balances])(queries.get_balance)
payments.on(OrderReserved)(reactions.charge_reserved_order)
payments.on(OrderCancelled)(reactions.refund_cancelled_order)
