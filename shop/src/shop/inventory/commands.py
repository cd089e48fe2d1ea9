"""Inventory's command handlers: plain functions, wired in ``service.py``."""

from __future__ import annotations

from bicameral import NotFoundError, Repository
from shop.inventory.domain import Product, Reservation, merge_lines, reserve_all_or_none
from shop.inventory.messages import (
    ReceiveStock,
    RegisterProduct,
    ReleaseStock,
    ReserveStock,
    ReturnStock,
    SellStock,
)

__all__ = [
    "receive_stock",
    "register_product",
    "release_stock",
    "reserve_stock",
    "return_stock",
    "sell_stock",
]


def register_product(cmd: RegisterProduct, product: Product) -> None:
    """Adds a product to the catalogue; 409 if the sku exists."""
    product.register(cmd.name, cmd.price_cents)


def receive_stock(cmd: ReceiveStock, product: Product) -> None:
    """Adds received units to a product's stock; 404 for an unknown sku."""
    if not product.exists:
        raise NotFoundError(f"no product {cmd.sku!r}")
    product.receive(cmd.quantity)


async def reserve_stock(
    cmd: ReserveStock, reservation: Reservation, products: Repository[Product]
) -> None:
    """Holds every line of an order, or records why none could be held."""
    wanted = merge_lines(cmd.lines)
    found = {sku: await products.get(sku) for sku in wanted}
    reserve_all_or_none(reservation, wanted, found)


async def release_stock(
    cmd: ReleaseStock, reservation: Reservation, products: Repository[Product]
) -> None:
    """Gives back what an order held (nothing if it held nothing)."""
    for sku in reservation.skus:
        (await products.get(sku)).release(cmd.customer_id, cmd.order_id)


async def sell_stock(
    cmd: SellStock, reservation: Reservation, products: Repository[Product]
) -> None:
    """Sells what an order held (nothing if it holds nothing)."""
    for sku in reservation.skus:
        (await products.get(sku)).sell(cmd.customer_id, cmd.order_id)


async def return_stock(
    cmd: ReturnStock, reservation: Reservation, products: Repository[Product]
) -> None:
    """Puts back on hand what was sold to a cancelled order (nothing if nothing was sold)."""
    for sku in reservation.skus:
        (await products.get(sku)).restock(cmd.customer_id, cmd.order_id)
