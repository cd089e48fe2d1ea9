"""The buses count every command and query, by outcome, and time them."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from bicameral import Command, MessageContext, Query, Service
from bicameral.bus import CommandBus, QueryBus
from bicameral.errors import BicameralError
from bicameral.eventstore.memory import MemoryEventStore
from bicameral.readstore.memory import MemoryReadStore
from shop.inventory.messages import GetProduct, ReceiveStock, RegisterProduct
from shop.inventory.service import inventory


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, {"service": "inventory", **labels}) or 0.0


async def test_commands_are_counted_by_outcome_and_timed() -> None:
    store = MemoryEventStore("inventory")
    await store.start()
    bus = CommandBus(inventory, store)
    ok = _sample("bicameral_commands_total", command="RegisterProduct", outcome="ok")
    refused = _sample("bicameral_commands_total", command="ReceiveStock", outcome="NotFoundError")
    timed = _sample("bicameral_command_seconds_count", command="RegisterProduct")
    appended = _sample("bicameral_events_appended_total")
    for sku in ("m1", "m2"):
        await bus.dispatch(RegisterProduct(sku=sku, name="Mug", price_cents=1), MessageContext())
    with pytest.raises(BicameralError):
        await bus.dispatch(ReceiveStock(sku="nope", quantity=1), MessageContext())
    after = _sample("bicameral_commands_total", command="RegisterProduct", outcome="ok")
    assert after == ok + 2
    assert (
        _sample("bicameral_commands_total", command="ReceiveStock", outcome="NotFoundError")
        == refused + 1
    )
    assert _sample("bicameral_command_seconds_count", command="RegisterProduct") == timed + 2
    assert _sample("bicameral_events_appended_total") == appended + 2


async def test_queries_are_counted_by_outcome_and_timed() -> None:
    reads = MemoryReadStore()
    await reads.start()
    bus = QueryBus(inventory, reads)
    missing = _sample("bicameral_queries_total", query="GetProduct", outcome="NotFoundError")
    timed = _sample("bicameral_query_seconds_count", query="GetProduct")
    with pytest.raises(BicameralError):
        await bus.ask(GetProduct(sku="none"), MessageContext())
    assert (
        _sample("bicameral_queries_total", query="GetProduct", outcome="NotFoundError")
        == missing + 1
    )
    assert _sample("bicameral_query_seconds_count", query="GetProduct") == timed + 1


class _Boom(RuntimeError):
    """A bug in a handler: not a BicameralError."""


class Poke(Command):
    key: str


class Peek(Query):
    key: str


broken = Service("broken")


@broken.command
def poke(command: Poke) -> None:
    raise _Boom("handler bug")


@broken.query
def peek(query: Peek) -> None:
    raise _Boom("handler bug")


def _errors(metric: str, **labels: str) -> float:
    found = REGISTRY.get_sample_value(metric, {"service": "broken", "outcome": "error", **labels})
    return found or 0.0


async def test_a_raising_handler_counts_as_an_error_on_both_buses() -> None:
    """Commands and queries share one outcome rule: a non-BicameralError counts as ``error``."""
    events, reads = MemoryEventStore("broken"), MemoryReadStore()
    await events.start()
    await reads.start()
    commands, queries = CommandBus(broken, events), QueryBus(broken, reads)
    before = _errors("bicameral_commands_total", command="Poke")
    before_query = _errors("bicameral_queries_total", query="Peek")
    with pytest.raises(_Boom):
        await commands.dispatch(Poke(key="k"), MessageContext())
    with pytest.raises(_Boom):
        await queries.ask(Peek(key="k"), MessageContext())
    assert _errors("bicameral_commands_total", command="Poke") == before + 1
    assert _errors("bicameral_queries_total", query="Peek") == before_query + 1
