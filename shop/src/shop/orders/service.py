"""The orders service: its declarations wired together in one place.

Who may do what: ``admin`` everything; a ``customer`` places and lists orders in their own
name, and reads or cancels only their own orders (another's order answers 404, as if it did not
exist). Order ids are per customer (``order_key``): placing ``order-1`` answers the same
whether or not another customer has an ``order-1``, so order ids cannot be probed. The saga's
commands are internal.
"""

from __future__ import annotations

from typing import Any

from bicameral import Service, allow
from shop.inventory.messages import StockReservationMade, StockReservationRefused
from shop.orders import commands, queries, reactions
from shop.orders.messages import OrderIdTaken, OrderPlaced, order_key
from shop.orders.projections import catalogue, orders
from shop.payments.messages import PaymentCaptured, PaymentDeclined

__all__ = ["orders_service"]

ADMIN = allow(roles={"admin"})
IN_OWN_NAME = ADMIN | allow(roles={"customer"}, owner="customer_id")
OWN_ORDERS = ADMIN | allow(roles={"customer"}, record_owner="customer_id", collections={"orders"})


def by_order(message: Any) -> str:
    """Returns the key of the order a message names: its customer's and its id."""
    return order_key(message.customer_id, message.order_id)


orders_service = Service("orders")
orders_service.projection(orders)
orders_service.projection(catalogue)
orders_service.command(key=by_order, retries=3, policy=IN_OWN_NAME)(commands.place_order)
orders_service.command(retries=3, policy=OWN_ORDERS)(commands.cancel_order)
orders_service.command(key=by_order, retries=10, internal=True)(commands.record_reservation)
orders_service.command(key=by_order, retries=10, internal=True)(commands.confirm_order)
orders_service.command(key=by_order, retries=10, internal=True)(commands.reject_order)
orders_service.command(key="order_id", retries=10, internal=True)(commands.index_order_id)
orders_service.events(OrderIdTaken)  # recorded, and read only by its own aggregate
orders_service.query(reads=[orders, catalogue], policy=OWN_ORDERS)(queries.get_order)
orders_service.query(reads=[orders, catalogue], policy=IN_OWN_NAME)(queries.list_customer_orders)
orders_service.on(StockReservationMade, name="record_reserved")(reactions.record_reserved)
orders_service.on(StockReservationRefused, name="reject_refused")(reactions.reject_refused)
orders_service.on(PaymentCaptured, name="confirm_paid")(reactions.confirm_paid)
orders_service.on(PaymentDeclined, name="reject_unpaid")(reactions.reject_unpaid)
orders_service.on(OrderPlaced, name="index_placed")(reactions.index_placed)
