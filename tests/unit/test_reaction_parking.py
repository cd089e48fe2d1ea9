"""Reactions: done, refused by a business rule (recorded), or poison (parked in order)."""

from __future__ import annotations

import logging

import pytest

from bicameral import (
    Aggregate,
    Command,
    CommandBus,
    ConfigurationError,
    Event,
    NewEvent,
    NotFoundError,
    PermissionDeniedError,
    Principal,
    RuleViolation,
    Service,
    StreamAppend,
)
from bicameral.bus import AllowAll, CommandCall
from bicameral.eventstore.memory import MemoryEventStore
from bicameral.readstore.memory import MemoryReadStore
from bicameral.workers.feeds import LogFeed
from bicameral.workers.parked import retry_sequence
from bicameral.workers.reactions import ReactionRunner, reaction_handle


class Ordered(Event, name="shop.Ordered"):
    order_id: str
    mood: str = "fine"


class Shipped(Event, name="shop.Shipped"):
    order_id: str


class Ship(Command):
    order_id: str
    mood: str


class Unhandled(Command):
    order_id: str


class Order(Aggregate):
    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.shipped = False

    def apply(self, event: Event) -> None:
        if isinstance(event, Shipped):
            self.shipped = True


BROKEN: set[str] = set()
"""Orders the reaction fails on."""


class Refusing(AllowAll):
    """Lets everything through except commands in a ``forbidden`` mood."""

    async def authorize_command(self, call: CommandCall) -> None:
        if getattr(call.command, "mood", "") == "forbidden":
            raise PermissionDeniedError("not for services")


def shop() -> tuple[Service, CommandBus, MemoryEventStore]:
    svc = Service("shop")
    svc.events(Ordered, Shipped)

    @svc.command(key="order_id", internal=True)
    def ship(cmd: Ship, order: Order) -> None:
        if cmd.mood == "late":
            raise RuleViolation("too late to ship")
        if cmd.mood == "gone":
            raise NotFoundError("no such order")
        if cmd.mood == "misconfigured":
            raise ConfigurationError("no carrier configured")
        if not order.shipped:
            order.record(Shipped(order_id=cmd.order_id))

    @svc.on(Ordered, name="ship_ordered", retries=1)
    def ship_ordered(event: Ordered) -> Command:
        if event.order_id in BROKEN:
            raise KeyError(event.order_id)
        if event.mood == "unhandled":
            return Unhandled(order_id=event.order_id)
        return Ship(order_id=event.order_id, mood=event.mood)

    store = MemoryEventStore("shop")
    return svc, CommandBus(svc, store, authorizer=Refusing(), cache_size=0), store


@pytest.fixture(autouse=True)
def _reset() -> None:
    BROKEN.clear()


async def order(store: MemoryEventStore, order_id: str, mood: str = "fine") -> None:
    event = NewEvent.of(Ordered(order_id=order_id, mood=mood))
    await store.append([StreamAppend(f"Order-{order_id}", None, [event])])


def runner(svc: Service, bus: CommandBus, reads: MemoryReadStore) -> ReactionRunner:
    feed = LogFeed("shop", bus.store)
    return ReactionRunner(bus, svc.reactions, feed, store=reads, retry_delay=0)


async def shipped(store: MemoryEventStore) -> list[str]:
    return [e.data["order_id"] for e in await store.read_all() if e.type == "shop.Shipped.v1"]


async def run_all(run: ReactionRunner) -> None:
    while await run.step(0.0):
        pass


async def test_a_failing_reaction_parks_its_stream_and_the_others_go_on() -> None:
    svc, bus, store = shop()
    reads = MemoryReadStore()
    BROKEN.add("b")
    for order_id in "abc":
        await order(store, order_id)
    await run_all(runner(svc, bus, reads))
    assert sorted(await shipped(store)) == ["a", "c"]
    [seq] = await reads.parked()
    assert (seq.consumer, seq.key, seq.service) == ("shop.ship_ordered", "Order-b", "shop")
    assert (seq.error, seq.attempts) == ("KeyError", 2)
    assert [e.data["order_id"] for e in seq.events] == ["b"]
    await order(store, "b", mood="again")  # a later event of the same stream waits behind it
    await run_all(runner(svc, bus, reads))
    [seq] = await reads.parked()
    assert [e.data["mood"] for e in seq.events] == ["fine", "again"]
    assert await reads.checkpoint("shop/reactions:shop") == await store.head()


async def test_business_refusals_are_recorded_and_not_parked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    svc, bus, store = shop()
    reads = MemoryReadStore()
    await order(store, "a", mood="late")
    await order(store, "b", mood="gone")
    with caplog.at_level(logging.WARNING, logger="bicameral.workers.reactions"):
        await run_all(runner(svc, bus, reads))
    assert "too late to ship" in caplog.text
    assert "no such order" in caplog.text
    assert await reads.parked() == []
    assert await reads.checkpoint("shop/reactions:shop") == await store.head()


@pytest.mark.parametrize(
    ("mood", "error"),
    [
        ("forbidden", "bicameral.errors.PermissionDeniedError"),
        ("misconfigured", "bicameral.errors.ConfigurationError"),
        ("unhandled", "bicameral.errors.UnknownMessageError"),
    ],
)
async def test_a_refused_permission_a_configuration_error_or_an_unknown_command_is_parked(
    mood: str, error: str, caplog: pytest.LogCaptureFixture
) -> None:
    svc, bus, store = shop()
    reads = MemoryReadStore()
    await order(store, "a", mood=mood)
    with caplog.at_level(logging.WARNING, logger="bicameral.workers.reactions"):
        await run_all(runner(svc, bus, reads))
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]
    [seq] = await reads.parked()
    assert seq.error == error
    assert await shipped(store) == []


async def test_a_retry_after_the_fix_runs_the_reaction_once() -> None:
    svc, bus, store = shop()
    reads = MemoryReadStore()
    BROKEN.add("b")
    await order(store, "b")
    await order(store, "b", mood="again")
    await run_all(runner(svc, bus, reads))
    [seq] = await reads.parked()
    [reaction] = svc.reactions
    failed = await retry_sequence(reads, seq.id, reaction_handle(bus, reaction))
    assert (failed.applied, failed.left) == (0, 2)
    BROKEN.clear()
    done = await retry_sequence(reads, seq.id, reaction_handle(bus, reaction))
    assert (done.applied, done.left) == (2, 0)
    assert await shipped(store) == ["b"]
    # the same events handled again (a crash before the unpark) send nothing twice
    for event in seq.events:
        await reaction_handle(bus, reaction)(event)
    ships = [e for e in await store.read_all() if e.type == "shop.Shipped.v1"]
    assert len(ships) == 1


async def test_a_checkpoint_an_earlier_release_kept_in_the_log_is_taken_over() -> None:
    svc, bus, store = shop()
    await order(store, "a")
    await order(store, "b")
    await store.save_checkpoint("reactions:shop", 1)
    reads = MemoryReadStore()
    await run_all(runner(svc, bus, reads))
    assert await shipped(store) == ["b"]
    assert await reads.checkpoint("shop/reactions:shop") == await store.head()


async def test_a_reaction_acting_for_a_user_is_unchanged() -> None:
    svc, bus, store = shop()
    await bus.store.append(
        [
            StreamAppend(
                "Order-x",
                None,
                [NewEvent.of(Ordered(order_id="x"), {"principal": Principal("ann").to_dict()})],
            )
        ]
    )
    await run_all(runner(svc, bus, MemoryReadStore()))
    [ship] = [e for e in await store.read_all() if e.type == "shop.Shipped.v1"]
    assert ship.principal["on_behalf_of"] == "ann"
    assert ship.metadata["causation_id"] == (await store.read_all())[0].id
    assert ship.principal["subject"] == "service:shop"
