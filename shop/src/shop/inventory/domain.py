"""Inventory's write model: the Product and Reservation aggregates and their invariants.

A product's ``available = on_hand - reserved`` never drops below zero. A reservation holds
every line of one order, or none: ``reserve_all_or_none`` decides it for all products at once,
and the command bus appends every touched stream in one atomic step.

Order ids are per customer: a reservation, and the units a product holds or sold for an order,
are keyed by ``reservation_key(customer_id, order_id)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bicameral import Aggregate, Event, RuleViolation
from shop.bounds import MAX_STOCK
from shop.inventory.messages import (
    PricedLine,
    ProductRegistered,
    StockLine,
    StockReceived,
    StockReleased,
    StockReservationMade,
    StockReservationRefused,
    StockReserved,
    StockReturned,
    StockSold,
)

__all__ = ["Product", "Reservation", "merge_lines", "reservation_key", "reserve_all_or_none"]


def reservation_key(customer_id: str, order_id: str) -> str:
    """Returns the key of one customer's order (``/`` is in no id)."""
    return f"{customer_id}/{order_id}"


def _key(event: StockReserved | StockReleased | StockSold | StockReturned) -> str:
    return reservation_key(event.customer_id, event.order_id)


class Product(Aggregate, snapshot_every=100):
    """A product's catalogue entry and stock, with the units held and sold per order.

    Every order adds events to a product's stream, so loads start from a snapshot taken at
    least every 100 events.
    """

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.name = ""
        self.price_cents = 0
        self.on_hand = 0
        self.held: dict[str, int] = {}
        self.sold: dict[str, int] = {}

    @property
    def reserved(self) -> int:
        """Returns the units held for orders."""
        return sum(self.held.values())

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
        """Adds received units to the stock on hand; refuses to hold more than ``MAX_STOCK``.

        Units sold to orders that may still be cancelled count, so no return can pass the limit.
        """
        if quantity <= 0:
            raise RuleViolation("quantity must be positive")
        if self.on_hand + sum(self.sold.values()) + quantity > MAX_STOCK:
            raise RuleViolation(f"a product holds at most {MAX_STOCK} units, returns due included")
        self.record(StockReceived(sku=self.id, quantity=quantity))

    def hold(self, customer_id: str, order_id: str, quantity: int) -> None:
        """Holds units for a customer's order; refuses more than are available."""
        if quantity > self.available:
            raise RuleViolation(f"only {self.available} of {self.id!r} available")
        if reservation_key(customer_id, order_id) not in self.held:
            self.record(
                StockReserved(
                    sku=self.id, order_id=order_id, customer_id=customer_id, quantity=quantity
                )
            )

    def release(self, customer_id: str, order_id: str) -> None:
        """Gives back the units held for an order (nothing if none are held)."""
        quantity = self.held.get(reservation_key(customer_id, order_id))
        if quantity is not None:
            self.record(
                StockReleased(
                    sku=self.id, order_id=order_id, customer_id=customer_id, quantity=quantity
                )
            )

    def sell(self, customer_id: str, order_id: str) -> None:
        """Sells the units held for an order (nothing if none are held)."""
        quantity = self.held.get(reservation_key(customer_id, order_id))
        if quantity is not None:
            self.record(
                StockSold(
                    sku=self.id, order_id=order_id, customer_id=customer_id, quantity=quantity
                )
            )

    def restock(self, customer_id: str, order_id: str) -> None:
        """Puts the units sold to an order back on hand (nothing if none were sold)."""
        quantity = self.sold.get(reservation_key(customer_id, order_id))
        if quantity is not None:
            self.record(
                StockReturned(
                    sku=self.id, order_id=order_id, customer_id=customer_id, quantity=quantity
                )
            )

    def apply(self, event: Event) -> None:
        """Changes state for one event."""
        match event:
            case ProductRegistered(name=name, price_cents=price):
                self.name, self.price_cents = name, price
            case StockReceived(quantity=quantity):
                self.on_hand += quantity
            case StockReserved(quantity=quantity):
                self.held[_key(event)] = quantity
            case StockReleased():
                del self.held[_key(event)]
            case StockSold(quantity=quantity):
                del self.held[_key(event)]
                self.on_hand -= quantity
                self.sold[_key(event)] = quantity
            case StockReturned(quantity=quantity):
                del self.sold[_key(event)]
                self.on_hand += quantity


class Reservation(Aggregate):
    """The stock inventory holds for one order: made (with its lines) or refused, once.

    Its id is ``reservation_key(customer_id, order_id)``.
    """

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.customer_id, _, self.order_id = id.partition("/")
        self.lines: list[PricedLine] = []
        self.refused = False

    @property
    def skus(self) -> list[str]:
        """Returns the skus the reservation holds."""
        return [line.sku for line in self.lines]

    def apply(self, event: Event) -> None:
        """Changes state for one event."""
        match event:
            case StockReservationMade(lines=lines):
                self.lines = list(lines)
            case StockReservationRefused():
                self.refused = True


def merge_lines(lines: Sequence[StockLine]) -> dict[str, int]:
    """Returns the quantity wanted per sku, in first-seen order."""
    wanted: dict[str, int] = {}
    for line in lines:
        wanted[line.sku] = wanted.get(line.sku, 0) + line.quantity
    return wanted


def reserve_all_or_none(
    reservation: Reservation, wanted: Mapping[str, int], products: Mapping[str, Product]
) -> None:
    """Holds every wanted unit on its product and records the reservation, or records why not.

    Does nothing when the order's reservation was already decided. An unknown sku wins over a
    lack of stock as the reason.
    """
    if reservation.exists:
        return
    customer_id, order_id = reservation.customer_id, reservation.order_id
    unknown = [sku for sku in wanted if not products[sku].exists]
    short = [sku for sku, q in wanted.items() if sku not in unknown and products[sku].available < q]
    if unknown or short:
        reason = "unknown_product" if unknown else "out_of_stock"
        skus = unknown or short
        reservation.record(
            StockReservationRefused(
                order_id=order_id, customer_id=customer_id, reason=reason, skus=skus
            )
        )
        return
    priced: list[PricedLine] = []
    for sku, quantity in wanted.items():
        product = products[sku]
        product.hold(customer_id, order_id, quantity)
        priced.append(
            PricedLine(
                sku=sku, name=product.name, quantity=quantity, unit_price_cents=product.price_cents
            )
        )
    total = sum(line.quantity * line.unit_price_cents for line in priced)
    reservation.record(
        StockReservationMade(
            order_id=order_id, customer_id=customer_id, lines=priced, total_cents=total
        )
    )
