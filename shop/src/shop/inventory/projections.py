"""Inventory's read model: one typed document per product, with its stock figures."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from bicameral import Projection, View
from shop.bounds import Price, Quantity
from shop.inventory.messages import (
    ProductRegistered,
    StockReceived,
    StockReleased,
    StockReserved,
    StockReturned,
    StockSold,
)

__all__ = ["ProductView", "products"]


class ProductView(BaseModel):
    """One product with its stock: the read model's document and the queries' answer."""

    sku: str
    name: str
    price_cents: Price
    on_hand: Quantity
    reserved: Quantity
    available: Quantity


products = Projection(
    "products", collections={"products": ProductView}, indexes={"products": ["name"]}
)


@products.on(ProductRegistered)
def registered(event: ProductRegistered, view: View) -> None:
    view.put(
        "products",
        event.sku,
        ProductView(
            sku=event.sku,
            name=event.name,
            price_cents=event.price_cents,
            on_hand=0,
            reserved=0,
            available=0,
        ),
    )


def _product(event: Any) -> list[tuple[str, str]]:
    """Names the product document an event changes (read in one batch)."""
    return [("products", event.sku)]


async def _change(view: View, sku: str, on_hand: int = 0, reserved: int = 0) -> None:
    doc: ProductView | None = await view.get("products", sku)
    if doc is None:
        return
    doc.on_hand += on_hand
    doc.reserved += reserved
    doc.available = doc.on_hand - doc.reserved
    view.put("products", sku, doc)


@products.on(StockReceived, prefetch=_product)
async def received(event: StockReceived, view: View) -> None:
    await _change(view, event.sku, on_hand=event.quantity)


@products.on(StockReserved, prefetch=_product)
async def reserved(event: StockReserved, view: View) -> None:
    await _change(view, event.sku, reserved=event.quantity)


@products.on(StockReleased, prefetch=_product)
async def released(event: StockReleased, view: View) -> None:
    await _change(view, event.sku, reserved=-event.quantity)


@products.on(StockSold, prefetch=_product)
async def sold(event: StockSold, view: View) -> None:
    await _change(view, event.sku, on_hand=-event.quantity, reserved=-event.quantity)


@products.on(StockReturned, prefetch=_product)
async def returned(event: StockReturned, view: View) -> None:
    await _change(view, event.sku, on_hand=event.quantity)
