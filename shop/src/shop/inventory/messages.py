"""Inventory's public contract: its commands, queries and events.

An order is named by its customer and its id (order ids are per customer): every command and
event about an order carries both. ``customer_id`` is "" in events stored before that.

The internal commands (``ReserveStock``, ``ReleaseStock``, ``SellStock``, ``ReturnStock``) are
sent only by inventory's reactions to the orders service's events; ``StockReservationMade`` and
``StockReservationRefused`` are what the orders service reacts to.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from bicameral import Command, Event, Query
from shop.bounds import MAX_LINES, Money, Price, Units

__all__ = [
    "CustomerId",
    "GetProduct",
    "ListProducts",
    "OrderId",
    "PricedLine",
    "ProductRegistered",
    "ReceiveStock",
    "RefusalReason",
    "RegisterProduct",
    "ReleaseStock",
    "ReserveStock",
    "ReturnStock",
    "SellStock",
    "Sku",
    "StockLine",
    "StockReceived",
    "StockReleased",
    "StockReservationMade",
    "StockReservationRefused",
    "StockReserved",
    "StockReturned",
    "StockSold",
]

Sku = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
OrderId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
CustomerId = OrderId
RefusalReason = Literal["out_of_stock", "unknown_product"]


class StockLine(BaseModel):
    """Units of one product."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sku: Sku
    quantity: Units


class PricedLine(BaseModel):
    """Units of one product reserved for an order, with its name and price at reservation."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sku: str
    name: str
    quantity: Units
    unit_price_cents: Price


class RegisterProduct(Command):
    """Adds a product to the catalogue; its sku must be new."""

    sku: Sku
    name: Annotated[str, Field(min_length=1, max_length=200)]
    price_cents: Price


class ReceiveStock(Command):
    """Adds received units to a product's stock on hand."""

    sku: Sku
    quantity: Units


class ReserveStock(Command):
    """Reserves every line of an order, or none of them (internal)."""

    order_id: OrderId
    customer_id: CustomerId
    lines: Annotated[list[StockLine], Field(min_length=1, max_length=MAX_LINES)]


class ReleaseStock(Command):
    """Gives back the units an order had reserved (internal)."""

    order_id: OrderId
    customer_id: CustomerId


class SellStock(Command):
    """Turns an order's reserved units into sold ones (internal)."""

    order_id: OrderId
    customer_id: CustomerId


class ReturnStock(Command):
    """Puts a cancelled order's sold units back on hand (internal)."""

    order_id: OrderId
    customer_id: CustomerId


class GetProduct(Query):
    """One product with its stock."""

    sku: Sku


class ListProducts(Query):
    """Every product, by sku."""


class ProductRegistered(Event, name="inventory.ProductRegistered"):
    sku: str
    name: str
    price_cents: Price


class StockReceived(Event, name="inventory.StockReceived"):
    sku: str
    quantity: Units


class StockReserved(Event, name="inventory.StockReserved"):
    """Units of one product held for an order (product stream)."""

    sku: str
    order_id: str
    customer_id: str = ""
    quantity: Units


class StockReleased(Event, name="inventory.StockReleased"):
    """Units held for an order given back to the available stock (product stream)."""

    sku: str
    order_id: str
    customer_id: str = ""
    quantity: Units


class StockSold(Event, name="inventory.StockSold"):
    """Units held for an order sold: they leave the stock on hand (product stream)."""

    sku: str
    order_id: str
    customer_id: str = ""
    quantity: Units


class StockReturned(Event, name="inventory.StockReturned"):
    """Units sold to a cancelled order back on hand (product stream)."""

    sku: str
    order_id: str
    customer_id: str = ""
    quantity: Units


class StockReservationMade(Event, name="inventory.StockReservationMade"):
    """Every line of an order is reserved, at these names and prices (reservation stream)."""

    order_id: str
    customer_id: str = ""
    lines: list[PricedLine]
    total_cents: Money


class StockReservationRefused(Event, name="inventory.StockReservationRefused"):
    """No line of an order is reserved, and why (reservation stream)."""

    order_id: str
    customer_id: str = ""
    reason: RefusalReason
    skus: list[str]
