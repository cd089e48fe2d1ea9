"""Inventory's read model: one document per product, with its stock figures."""

from __future__ import annotations

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


async def _change(view: View, sku: str, on_hand: int = 0, reserved: int = 0) -> None:
    doc = await view.get("products", sku)
    if doc is None:
        return
    doc["on_hand"] += on_hand
    doc["reserved"] += reserved
    doc["available"] = doc["on_hand"] - doc["reserved"]
    view.put("products", sku, doc)


@products.on(StockReceived)
async def received(event: StockReceived, view: View) -> None:
    await _change(view, event.sku, on_hand=event.quantity)


@products.on(StockReserved)
async def reserved(event: StockReserved, view: View) -> None:
    await _change(view, event.sku, reserved=event.quantity)


@products.on(StockReleased)
async def released(event: StockReleased, view: View) -> None:
    await _change(view, event.sku, reserved=-event.quantity)


@products.on(StockSold)
async def sold(event: StockSold, view: View) -> None:
    await _change(view, event.sku, on_hand=-event.quantity, reserved=-event.quantity)


@products.on(StockReturned)
async def returned(event: StockReturned, view: View) -> None:
    await _change(view, event.sku, on_hand=event.quantity)
