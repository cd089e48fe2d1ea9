"""The shop's services, as ``bicameral up`` finds them (entry point ``bicameral.apps``)."""

from __future__ import annotations

from bicameral import Service
from shop.inventory.service import inventory

__all__ = ["services"]


def services() -> list[Service]:
    """Returns every microservice of the shop."""
    return [inventory]
