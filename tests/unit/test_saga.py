"""Reactions: events turned into the service's own commands, once each, under its identity."""

from __future__ import annotations

import logging

import pytest

from bicameral import (
    Aggregate,
    Command,
    CommandBus,
    Envelope,
    Event,
    MessageContext,
    Principal,
    RuleViolation,
    Service,
)
from bicameral.eventstore.memory import MemoryEventStore
from bicameral.readstore.memory import MemoryReadStore
from bicameral.workers.feeds import LogFeed
from bicameral.workers.reactions import ReactionRunner, service_principal


class Deposited(Event, name="bank.Deposited"):
    id: str
    amount: int


class Flagged(Event, name="bank.Flagged"):
    id: str
    cause: str


class Deposit(Command):
    id: str
    amount: int


class Flag(Command):
    id: str
    cause: str


class Account(Aggregate):
    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.flags: list[str] = []

    def apply(self, event: Event) -> None:
        if isinstance(event, Flagged):
            self.flags.append(event.cause)


def runner_of(svc: Service, bus: CommandBus, reads: MemoryReadStore) -> ReactionRunner:
    return ReactionRunner(bus, svc.reactions, LogFeed("bank", bus.store), store=reads)


def bank() -> tuple[Service, CommandBus, MemoryEventStore]:
    svc = Service("bank")
    svc.events(Deposited, Flagged)

    @svc.command(key="id")
    def deposit(cmd: Deposit, account: Account) -> None:
        account.record(Deposited(id=cmd.id, amount=cmd.amount))

    @svc.command(key="id", internal=True)
    def flag(cmd: Flag, account: Account) -> None:
        if cmd.cause in account.flags:
            raise RuleViolation("flagged already for this")
        account.record(Flagged(id=cmd.id, cause=cmd.cause))

    @svc.on(Deposited)
    def large_deposits(event: Deposited, env: Envelope) -> list[Command]:
        if event.amount < 100:
            return []
        return [Flag(id=event.id, cause="large"), Flag(id=event.id, cause=env.id)]

    store = MemoryEventStore("bank")
    return svc, CommandBus(svc, store), store


ANN = MessageContext(principal=Principal("ann"), correlation_id="corr-1")


async def flagged(store: MemoryEventStore) -> list[Envelope]:
    return [e for e in await store.read_all() if e.type == "bank.Flagged.v1"]


async def test_a_reaction_sends_commands_as_the_service_acting_for_the_user() -> None:
    svc, bus, store = bank()
    reads = MemoryReadStore()
    await bus.dispatch(Deposit(id="a", amount=500), ANN)
    runner = runner_of(svc, bus, reads)
    assert await runner.step(0.0) == 1
    cause = (await store.read_all())[0]
    found = await flagged(store)
    assert [e.data["cause"] for e in found] == ["large", cause.id]
    for env in found:
        assert env.principal == service_principal("bank", cause).to_dict()
        assert env.principal["on_behalf_of"] == "ann"
        assert env.metadata["causation_id"] == cause.id
        assert env.metadata["correlation_id"] == "corr-1"


async def test_a_redelivered_event_changes_nothing() -> None:
    svc, bus, store = bank()
    reads = MemoryReadStore()
    await bus.dispatch(Deposit(id="a", amount=500), ANN)
    runner = runner_of(svc, bus, reads)
    await runner.step(0.0)
    head = await store.head()
    again = runner_of(svc, bus, MemoryReadStore())  # its checkpoint lost: all delivered again
    assert await again.step(0.0) >= 1
    assert await store.head() == head


async def test_a_refused_reaction_is_logged_and_the_runner_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    svc, bus, store = bank()
    reads = MemoryReadStore()
    await bus.dispatch(
        Flag(id="a", cause="large"), MessageContext(principal=Principal("x", service="bank"))
    )
    await bus.dispatch(Deposit(id="a", amount=500), ANN)
    await bus.dispatch(Deposit(id="b", amount=1), ANN)
    runner = runner_of(svc, bus, reads)
    with caplog.at_level(logging.WARNING, logger="bicameral.workers.reactions"):
        while await runner.step(0.0):
            pass
    assert "flagged already" in caplog.text
    assert len(await flagged(store)) == 2
    assert await reads.checkpoint(runner.checkpoint_name) == await store.head()
