"""The payments service: its declarations wired together in one place.

Who may do what: ``admin`` everything; a ``customer`` deposits to and reads only their own
balance. Charges and refunds are the order saga's internal commands.
"""

from __future__ import annotations

from bicameral import Service, allow
from shop.orders.messages import OrderCancelled, OrderReserved
from shop.payments import commands, queries, reactions
from shop.payments.messages import PaymentDeclined
from shop.payments.projections import balances

__all__ = ["payments"]

ADMIN = allow(roles={"admin"})
IN_OWN_NAME = ADMIN | allow(roles={"customer"}, owner="customer_id")

payments = Service("payments")
payments.events(PaymentDeclined)
payments.projection(balances)
payments.command(key="customer_id", retries=3, policy=IN_OWN_NAME)(commands.deposit_funds)
payments.command(key="customer_id", retries=10, internal=True)(commands.charge_customer)
payments.command(key="customer_id", retries=10, internal=True)(commands.refund_customer)
payments.query(reads=[balances], policy=IN_OWN_NAME)(queries.get_balance)
payments.on(OrderReserved, name="charge_reserved_order")(reactions.charge_reserved_order)
payments.on(OrderCancelled, name="refund_cancelled_order")(reactions.refund_cancelled_order)
