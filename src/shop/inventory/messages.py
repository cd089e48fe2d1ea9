"""Inventory's public contract: its commands, queries and events."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from bicameral import Command, Event, Query

__all__ = [
    "GetProduct",
    "ListProducts",
    "ProductRegistered",
    "ReceiveStock",
    "RegisterProduct",
    "StockReceived",
]

Sku = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


class RegisterProduct(Command):
    """Adds a product to the catalogue; its sku must be new."""

    sku: Sku
    name: Annotated[str, Field(min_length=1, max_length=200)]
    price_cents: Annotated[int, Field(ge=0)]


class ReceiveStock(Command):
    """Adds received units to a product's stock on hand."""

    sku: Sku
    quantity: Annotated[int, Field(gt=0)]


class GetProduct(Query):
    """One product with its stock."""

    sku: Sku


class ListProducts(Query):
    """Every product, by sku."""


class ProductRegistered(Event, name="inventory.ProductRegistered"):
    sku: str
    name: str
    price_cents: int


class StockReceived(Event, name="inventory.StockReceived"):
    sku: str
    quantity: int
