"""Inventory's query handlers, served from its read model only: wired in ``service.py``."""

from __future__ import annotations

from pydantic import BaseModel

from bicameral import NotFoundError, ReadModel
from shop.inventory.messages import GetProduct, ListProducts
from shop.inventory.projections import ProductView

__all__ = ["ProductList", "ProductView", "get_product", "list_products"]


class ProductList(BaseModel):
    items: list[ProductView]


async def get_product(query: GetProduct, reads: ReadModel) -> ProductView:
    """One product with its stock; 404 for an unknown sku."""
    product: ProductView | None = await reads.get("products", query.sku)
    if product is None:
        raise NotFoundError(f"no product {query.sku!r}")
    return product


async def list_products(query: ListProducts, reads: ReadModel) -> ProductList:
    """Every product, by sku."""
    return ProductList(items=await reads.all("products"))
