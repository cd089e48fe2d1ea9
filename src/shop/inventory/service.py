"""The inventory service: its declarations wired together in one place."""

from __future__ import annotations

from bicameral import Service
from shop.inventory import commands, queries
from shop.inventory.projections import products

__all__ = ["inventory"]

inventory = Service("inventory")
inventory.projection(products)
inventory.command(key="sku", retries=3)(commands.register_product)
inventory.command(key="sku", retries=3)(commands.receive_stock)
inventory.query(reads=[products])(queries.get_product)
inventory.query(reads=[products])(queries.list_products)
