"""Inventory's command handlers: plain functions, wired in ``service.py``."""

from __future__ import annotations

from bicameral import NotFoundError
from shop.inventory.domain import Product
from shop.inventory.messages import ReceiveStock, RegisterProduct

__all__ = ["receive_stock", "register_product"]


def register_product(cmd: RegisterProduct, product: Product) -> None:
    """Adds a product to the catalogue; 409 if the sku exists."""
    product.register(cmd.name, cmd.price_cents)


def receive_stock(cmd: ReceiveStock, product: Product) -> None:
    """Adds received units to a product's stock; 404 for an unknown sku."""
    if not product.exists:
        raise NotFoundError(f"no product {cmd.sku!r}")
    product.receive(cmd.quantity)
