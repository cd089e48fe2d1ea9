"""The shop, its ``products`` projection slowed down (a pause every 50 events folded).

A rebuild of 20,000 events then takes seconds rather than a fraction of one, so an end-to-end
test can watch it, attach to it and kill the projector halfway through. The documents are
exactly those of the shop's own projection.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import Callable
from typing import Any

from bicameral import Projection, Service
from shop.app import services as shop_services
from shop.inventory.projections import products

__all__ = ["services"]

EVERY = 50
PAUSE = 0.02


def _slowed(fn: Callable[..., Any], counter: dict[str, int]) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def handler(*args: Any) -> None:
        counter["n"] += 1
        if counter["n"] % EVERY == 0:
            await asyncio.sleep(PAUSE)
        result = fn(*args)
        if asyncio.iscoroutine(result):
            await result

    return handler


def slow_products() -> Projection:
    """Returns the shop's products projection, pausing every EVERY events."""
    slow = Projection(
        "products",
        collections={**products.collections, **products.models},
        indexes={c: products.collections[c] for c in products.models},
        version=products.version,
    )
    counter = {"n": 0}
    for handler in products.handlers.values():
        slow.on(handler.event, prefetch=handler.prefetch)(_slowed(handler.fn, counter))
    return slow


def services() -> list[Service]:
    """Returns the shop's services, the inventory's products projection slowed down."""
    found = []
    for service in shop_services():
        if service.name != "inventory":
            found.append(service)
            continue
        slow = slow_products()
        queries = {
            name: dataclasses.replace(handler, reads=(slow,))
            for name, handler in service.queries.items()
        }
        copy = dataclasses.replace(service, projections=[], queries=queries)
        copy.projection(slow)
        found.append(copy)
    return found
