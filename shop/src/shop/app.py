"""The shop's services, as ``bicameral up`` finds them (entry point ``bicameral.apps``)."""

from __future__ import annotations

from bicameral import Service
from shop.inventory.service import inventory
from shop.orders.service import orders_service
from shop.payments.service import payments

__all__ = ["services"]


def services() -> list[Service]:
    """Returns every microservice of the shop."""
    return [inventory, orders_service, payments]
