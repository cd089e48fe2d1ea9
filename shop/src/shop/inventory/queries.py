"""Inventory's query handlers, served from its read model only: wired in ``service.py``."""

from __future__ import annotations

from pydantic import BaseModel

from bicameral import NotFoundError, ReadModel
from shop.bounds import Price, Quantity
from shop.inventory.messages import GetProduct, ListProducts

__all__ = ["ProductList", "ProductView", "get_product", "list_products"]


class ProductView(BaseModel):
    sku: str
    name: str
    price_cents: Price
    on_hand: Quantity
    reserved: Quantity
    available: Quantity


class ProductList(BaseModel):
    items: list[ProductView]


async def get_product(query: GetProduct, reads: ReadModel) -> ProductView:
    """One product with its stock; 404 for an unknown sku."""
    doc = await reads.get("products", query.sku)
    if doc is None:
        raise NotFoundError(f"no product {query.sku!r}")
    return ProductView.model_validate(doc)


async def list_products(query: ListProducts, reads: ReadModel) -> ProductList:
    """Every product, by sku."""
    return ProductList(items=[ProductView.model_validate(d) for d in await reads.all("products")])
