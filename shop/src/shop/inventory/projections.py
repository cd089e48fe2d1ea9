"""Inventory's read model: one document per product, with its stock figures."""

from __future__ import annotations

from typing import Any

from bicameral import Projection, View
from shop.inventory.messages import (
    ProductRegistered,
    StockReceived,
    StockReleased,
    StockReserved,
    StockReturned,
    StockSold,
)

__all__ = ["products"]

products = Projection("products", collections={"products": ["name"]})


@products.on(ProductRegistered)
def registered(event: ProductRegistered, view: View) -> None:
    view.put(
        "products",
        event.sku,
        {
            "sku": event.sku,
            "name": event.name,
            "price_cents": event.price_cents,
            "on_hand": 0,
            "reserved": 0,
            "available": 0,
        },
    )


def _product(event: Any) -> list[tuple[str, str]]:
    """Names the product document an event changes (read in one batch)."""
    return [("products", event.sku)]


async def _change(view: View, sku: str, on_hand: int = 0, reserved: int = 0) -> None:
    doc = await view.get("products", sku)
    if doc is None:
        return
    doc["on_hand"] += on_hand
    doc["reserved"] += reserved
    doc["available"] = doc["on_hand"] - doc["reserved"]
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
