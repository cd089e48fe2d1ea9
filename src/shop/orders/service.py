"""The orders service: its declarations wired together in one place."""

from __future__ import annotations

from bicameral import Service
from shop.inventory.messages import StockReservationMade, StockReservationRefused
from shop.orders import commands, queries, reactions
from shop.orders.projections import catalogue, orders
from shop.payments.messages import PaymentCaptured, PaymentDeclined

__all__ = ["orders_service"]

orders_service = Service("orders")
orders_service.projection(orders)
orders_service.projection(catalogue)
orders_service.command(key="order_id", retries=3)(commands.place_order)
orders_service.command(key="order_id", retries=3)(commands.cancel_order)
orders_service.command(key="order_id", retries=10, internal=True)(commands.record_reservation)
orders_service.command(key="order_id", retries=10, internal=True)(commands.confirm_order)
orders_service.command(key="order_id", retries=10, internal=True)(commands.reject_order)
orders_service.query(reads=[orders, catalogue])(queries.get_order)
orders_service.query(reads=[orders, catalogue])(queries.list_customer_orders)
orders_service.on(StockReservationMade)(reactions.record_reserved)
orders_service.on(StockReservationRefused)(reactions.reject_refused)
orders_service.on(PaymentCaptured)(reactions.confirm_paid)
orders_service.on(PaymentDeclined)(reactions.reject_unpaid)
