"""The inventory service: its declarations wired together in one place.

Who may do what: ``admin`` everything; ``staff`` registers products and receives stock;
anyone, even without a token, reads the catalogue. Reservations are the order saga's
internal commands, sent only under the service's own identity.
"""

from __future__ import annotations

from typing import Any

from bicameral import PUBLIC, Service, allow
from shop.inventory import commands, queries, reactions
from shop.inventory.domain import reservation_key
from shop.inventory.messages import StockReservationMade, StockReservationRefused
from shop.inventory.projections import products
from shop.orders.messages import OrderCancelled, OrderConfirmed, OrderPlaced, OrderRejected

__all__ = ["inventory"]

ADMIN = allow(roles={"admin"})
STOCK_KEEPERS = ADMIN | allow(roles={"staff"})


def by_order(message: Any) -> str:
    """Returns the key of the reservation a message names: its customer's order."""
    return reservation_key(message.customer_id, message.order_id)


inventory = Service("inventory")
inventory.events(StockReservationMade, StockReservationRefused)
inventory.projection(products)
inventory.command(key="sku", retries=3, policy=STOCK_KEEPERS)(commands.register_product)
inventory.command(key="sku", retries=3, policy=STOCK_KEEPERS)(commands.receive_stock)
inventory.command(key=by_order, retries=10, internal=True)(commands.reserve_stock)
inventory.command(key=by_order, retries=10, internal=True)(commands.release_stock)
inventory.command(key=by_order, retries=10, internal=True)(commands.sell_stock)
inventory.command(key=by_order, retries=10, internal=True)(commands.return_stock)
inventory.query(reads=[products], policy=PUBLIC)(queries.get_product)
inventory.query(reads=[products], policy=PUBLIC)(queries.list_products)
inventory.on(OrderPlaced, name="reserve_placed")(reactions.reserve_placed)
inventory.on(OrderConfirmed, name="sell_confirmed")(reactions.sell_confirmed)
inventory.on(OrderRejected, name="release_rejected")(reactions.release_rejected)
inventory.on(OrderCancelled, name="return_cancelled")(reactions.return_cancelled)
