"""The order flow as the three services declare it, run without I/O under any delivery order.

A small in-memory world dispatches each command to its declared handler (aggregates rebuilt
from their streams, events kept only if the handler succeeds, as the command bus does) and
delivers each service's events to the others' reactions in per-source order. Hypothesis picks
the interleaving, and every event is delivered at least twice, with no inbox: every step must be
idempotent by itself. Once everything is delivered, every invariant of the shop must hold.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bicameral import Aggregate, BicameralError, Command, Event, Principal
from shop.app import services
from shop.inventory.domain import Product
from shop.inventory.messages import ReceiveStock, RegisterProduct
from shop.orders.messages import CancelOrder, OrderLine, PlaceOrder
from shop.payments.domain import Account
from shop.payments.messages import DepositFunds

SKUS = ["a", "b"]
ONE_OF = {
    "StockReservationMade": "reservation decided",
    "StockReservationRefused": "reservation decided",
    "PaymentCaptured": "payment decided",
    "PaymentDeclined": "payment decided",
    "OrderConfirmed": "order decided",
    "OrderRejected": "order decided",
}
CUSTOMERS = ["x", "y"]


class Repo:
    """The Repository a handler sees: loads aggregates from the world's streams."""

    def __init__(self, world: World, cls: type[Aggregate]) -> None:
        self.world, self.cls = world, cls

    async def get(self, id: str) -> Aggregate:
        return self.world.load(self.cls, id)


class World:
    def __init__(self) -> None:
        self.services = {s.name: s for s in services()}
        self.streams: dict[tuple[type[Aggregate], str], list[Event]] = {}
        self.logs: dict[str, list[Event]] = {name: [] for name in self.services}
        self.loaded: dict[tuple[type[Aggregate], str], Aggregate] = {}
        self.cursors = {(s.name, r.source): 0 for s in self.services.values() for r in s.reactions}

    def load(self, cls: type[Aggregate], id: str) -> Aggregate:
        key = (cls, id)
        if key not in self.loaded:
            aggregate = cls(id)
            aggregate.replay(self.streams.get(key, []))
            self.loaded[key] = aggregate
        return self.loaded[key]

    async def send(self, service: str, command: Command, sender: str = "admin") -> None:
        handler = self.services[service].commands[command.message_name]
        self.loaded = {}
        args: list[Any] = []
        for param in handler.params:
            if param.kind == "principal":
                args.append(Principal(sender, frozenset({"customer"})))
                continue
            assert param.cls is not None
            if param.kind == "aggregate":
                assert handler.key is not None
                args.append(self.load(param.cls, handler.key(command)))
            else:
                args.append(Repo(self, param.cls))
        try:
            result = handler.fn(command, *args)
            if handler.is_async:
                await result
        except BicameralError:
            return
        for key, aggregate in self.loaded.items():
            self.streams.setdefault(key, []).extend(aggregate.pending)
            self.logs[service].extend(aggregate.pending)

    def ready(self) -> list[tuple[str, str]]:
        return [c for c, at in self.cursors.items() if at < len(self.logs[c[1]])]

    async def deliver(self, consumer: tuple[str, str], again: bool) -> None:
        service, source = consumer
        event = self.logs[source][self.cursors[consumer]]
        for reaction in self.services[service].reactions:
            if reaction.source == source and isinstance(event, reaction.event):
                out = reaction.fn(event)
                for command in [] if out is None else [out] if isinstance(out, Command) else out:
                    await self.send(service, command)
        if not again:
            self.cursors[consumer] += 1

    def of(self, service: str, name: str) -> list[Any]:
        return [e for e in self.logs[service] if type(e).__name__ == name]


orders_strategy = st.lists(
    st.tuples(
        st.sampled_from(CUSTOMERS),
        st.dictionaries(st.sampled_from([*SKUS, "ghost"]), st.integers(1, 3), min_size=1),
    ),
    min_size=1,
    max_size=6,
)
schedule_strategy = st.lists(
    st.tuples(st.integers(0, 50), st.booleans(), st.one_of(st.none(), st.integers(0, 5))),
    max_size=60,
)


@settings(max_examples=100, deadline=None)
@given(
    stock=st.fixed_dictionaries({sku: st.integers(0, 4) for sku in SKUS}),
    deposits=st.fixed_dictionaries({c: st.integers(1, 3000) for c in CUSTOMERS}),
    orders=orders_strategy,
    schedule=schedule_strategy,
)
def test_every_invariant_holds_under_any_interleaving_and_redelivery(
    stock: dict[str, int],
    deposits: dict[str, int],
    orders: list[tuple[str, dict[str, int]]],
    schedule: list[tuple[int, bool, int | None]],
) -> None:
    asyncio.run(_run(stock, deposits, orders, schedule))


async def _run(
    stock: dict[str, int],
    deposits: dict[str, int],
    orders: list[tuple[str, dict[str, int]]],
    schedule: list[tuple[int, bool, int | None]],
) -> None:
    world = World()
    for n, sku in enumerate(SKUS):
        await world.send("inventory", RegisterProduct(sku=sku, name=sku, price_cents=300 * n + 200))
        if stock[sku]:
            await world.send("inventory", ReceiveStock(sku=sku, quantity=stock[sku]))
    for customer, amount in deposits.items():
        await world.send("payments", DepositFunds(customer_id=customer, amount_cents=amount))
    for n, (customer, lines) in enumerate(orders):
        items = [OrderLine(sku=s, quantity=q) for s, q in lines.items()]
        order_id = f"o{n % 3}"  # customers share order ids; a customer's second o1 is refused
        await world.send("orders", PlaceOrder(order_id=order_id, customer_id=customer, lines=items))
    for pick, again, cancel in schedule:
        if cancel is not None:
            customer = CUSTOMERS[cancel % 2]
            await world.send("orders", CancelOrder(order_id=f"o{cancel % 3}"), sender=customer)
        ready = world.ready()
        if ready:
            await world.deliver(ready[pick % len(ready)], again)
    while ready := world.ready():
        await world.deliver(ready[-1], again=True)
        await world.deliver(ready[-1], again=False)
    world.loaded = {}

    status: dict[tuple[str, str], str] = {}
    for event in world.logs["orders"]:
        name = type(event).__name__
        if name == "OrderPlaced":
            status[event.customer_id, event.order_id] = "PENDING"
        elif name in {"OrderConfirmed", "OrderRejected", "OrderCancelled"}:
            status[event.customer_id, event.order_id] = name.removeprefix("Order").upper()
    assert set(status.values()) <= {"CONFIRMED", "REJECTED", "CANCELLED"}

    for sku in SKUS:
        moved = {
            kind: sum(e.quantity for e in world.of("inventory", kind) if e.sku == sku)
            for kind in ("StockReserved", "StockReleased", "StockSold", "StockReturned")
        }
        assert moved["StockReserved"] == moved["StockReleased"] + moved["StockSold"]
        product = world.load(Product, sku)
        assert isinstance(product, Product)
        assert product.reserved == 0
        assert product.on_hand == stock[sku] - moved["StockSold"] + moved["StockReturned"] >= 0

    captured = sum(e.amount_cents for e in world.of("payments", "PaymentCaptured"))
    refunded = sum(e.amount_cents for e in world.of("payments", "PaymentRefunded"))
    accounts = [world.load(Account, c) for c in CUSTOMERS]
    balances = sum(a.balance_cents for a in accounts if isinstance(a, Account))
    assert balances + captured - refunded == sum(deposits.values())
    kept = [
        e
        for e in world.of("orders", "OrderConfirmed")
        if status[e.customer_id, e.order_id] == "CONFIRMED"
    ]
    assert captured - refunded == sum(e.total_cents for e in kept)

    effects = [
        (
            ONE_OF.get(type(e).__name__, type(e).__name__),
            e.customer_id,
            e.order_id,
            getattr(e, "sku", ""),
        )
        for log in world.logs.values()
        for e in log
        if hasattr(e, "order_id")
    ]
    assert len(effects) == len(set(effects)), "a step took effect twice"
