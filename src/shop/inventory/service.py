"""The inventory service: its declarations wired together in one place.

Who may do what: ``admin`` everything; ``staff`` registers products and receives stock;
anyone, even without a token, reads the catalogue.
"""

from __future__ import annotations

from bicameral import PUBLIC, Service, allow
from shop.inventory import commands, queries
from shop.inventory.projections import products

__all__ = ["inventory"]

ADMIN = allow(roles={"admin"})
STOCK_KEEPERS = ADMIN | allow(roles={"staff"})

inventory = Service("inventory")
inventory.projection(products)
inventory.command(key="sku", retries=3, policy=STOCK_KEEPERS)(commands.register_product)
inventory.command(key="sku", retries=3, policy=STOCK_KEEPERS)(commands.receive_stock)
inventory.query(reads=[products], policy=PUBLIC)(queries.get_product)
inventory.query(reads=[products], policy=PUBLIC)(queries.list_products)
