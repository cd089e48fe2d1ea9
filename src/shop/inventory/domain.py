"""Inventory's write model: the Product aggregate and its invariants."""

from __future__ import annotations

from bicameral import Aggregate, Event, RuleViolation
from shop.inventory.messages import ProductRegistered, StockReceived

__all__ = ["Product"]


class Product(Aggregate):
    """A product's catalogue entry and stock; ``available = on_hand - reserved`` stays >= 0."""

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.name = ""
        self.price_cents = 0
        self.on_hand = 0
        self.reserved = 0

    @property
    def available(self) -> int:
        """Returns the units that can still be reserved."""
        return self.on_hand - self.reserved

    def register(self, name: str, price_cents: int) -> None:
        """Registers the product; refuses a sku that exists."""
        if self.exists:
            raise RuleViolation(f"product {self.id!r} is already registered")
        self.record(ProductRegistered(sku=self.id, name=name, price_cents=price_cents))

    def receive(self, quantity: int) -> None:
        """Adds received units to the stock on hand."""
        if quantity <= 0:
            raise RuleViolation("quantity must be positive")
        self.record(StockReceived(sku=self.id, quantity=quantity))

    def apply(self, event: Event) -> None:
        """Changes state for one event."""
        match event:
            case ProductRegistered(name=name, price_cents=price):
                self.name, self.price_cents = name, price
            case StockReceived(quantity=quantity):
                self.on_hand += quantity
