"""Inventory's read model: one document per product, with its stock figures."""

from __future__ import annotations

from bicameral import Projection, View
from shop.inventory.messages import ProductRegistered, StockReceived

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


@products.on(StockReceived)
async def received(event: StockReceived, view: View) -> None:
    doc = await view.get("products", event.sku)
    if doc is None:
        return
    doc["on_hand"] += event.quantity
    doc["available"] = doc["on_hand"] - doc["reserved"]
    view.put("products", event.sku, doc)
