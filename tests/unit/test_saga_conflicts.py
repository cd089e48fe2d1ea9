"""A reaction's command still in conflict after its retries is retried later, never dropped."""

from __future__ import annotations

import pytest

from bicameral import (
    Aggregate,
    Command,
    CommandBus,
    ConcurrencyError,
    Event,
    MessageContext,
    NewEvent,
    Service,
    StreamAppend,
)
from bicameral.context import ANONYMOUS
from bicameral.eventstore.memory import MemoryEventStore
from bicameral.readstore.memory import MemoryReadStore
from bicameral.workers.feeds import LogFeed
from bicameral.workers.reactions import ReactionRunner


class Poke(Command):
    id: str


class Touch(Command):
    id: str


class Poked(Event, name="s.Poked"):
    id: str


class Touched(Event, name="s.Touched"):
    id: str


class Thing(Aggregate):
    def apply(self, event: Event) -> None:
        pass


async def test_a_conflicting_reaction_command_keeps_its_event_for_the_next_step() -> None:
    store = MemoryEventStore("s")
    await store.start()
    service = Service("s")
    service.events(Poked, Touched)
    interfere = [True]

    @service.command(key="id")
    def poke(cmd: Poke, thing: Thing) -> None:
        thing.record(Poked(id=cmd.id))

    @service.command(key="id", internal=True)
    async def touch(cmd: Touch, thing: Thing) -> None:
        thing.record(Touched(id=cmd.id))
        if interfere:
            interfere.clear()
            other = NewEvent.of(Touched(id="other"))
            await store.append([StreamAppend(Thing.stream_id("t"), None, [other])])

    @service.on(Poked)
    def react(event: Poked) -> Touch:
        return Touch(id=event.id)

    bus = CommandBus(service, store, cache_size=0)  # conflicts from fresh loads only
    await bus.dispatch(Poke(id="t"), MessageContext(principal=ANONYMOUS))
    reads = MemoryReadStore()
    runner = ReactionRunner(bus, service.reactions, LogFeed("s", store), store=reads)

    with pytest.raises(ConcurrencyError):
        await runner.step(timeout=0)
    assert await reads.checkpoint(runner.checkpoint_name) == 0

    assert await runner.step(timeout=0) > 0
    types = [env.type for env in await store.read_stream(Thing.stream_id("t"))]
    assert types == ["s.Poked.v1", "s.Touched.v1", "s.Touched.v1"]
