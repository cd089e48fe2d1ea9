"""The aggregate cache: commands skip reading their stream, and a stale copy is never trusted."""

from __future__ import annotations

from bicameral import Aggregate, Command, Event, MessageContext, Principal, RuleViolation, Service
from bicameral.aggregate import AggregateCache
from bicameral.bus import CommandBus
from bicameral.envelope import NewEvent
from bicameral.eventstore.memory import MemoryEventStore
from bicameral.ports import StreamAppend


class Add(Command):
    id: str
    n: int


class Added(Event, name="calc.Added"):
    n: int


class Counter(Aggregate):
    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.total = 0

    def apply(self, event: Event) -> None:
        match event:
            case Added(n=n):
                self.total += n


calc = Service("calc")
calc.events(Added)
totals: list[int] = []


@calc.command(key="id")
def add(cmd: Add, counter: Counter) -> None:
    counter.record(Added(n=cmd.n))
    totals.append(counter.total)


CTX = MessageContext(principal=Principal("s", service="calc"))


class CountingStore(MemoryEventStore):
    """Counts stream reads."""

    reads = 0

    async def read_stream(self, stream_id: str, after_version: int = 0) -> list:  # type: ignore[type-arg]
        self.reads += 1
        return await super().read_stream(stream_id, after_version)


async def test_a_cached_aggregate_is_not_read_again() -> None:
    store = CountingStore("calc")
    bus = CommandBus(calc, store)
    for n in (1, 2, 3):
        await bus.dispatch(Add(id="a", n=n), CTX)
    assert store.reads == 1
    assert await store.stream_version("counter-a") == 3


async def test_a_stale_cached_aggregate_runs_again_on_a_fresh_load() -> None:
    store = CountingStore("calc")
    bus = CommandBus(calc, store)
    await bus.dispatch(Add(id="a", n=1), CTX)
    # another process appends behind this one's back
    await store.append([StreamAppend("counter-a", 1, [NewEvent("calc.Added.v1", {"n": 10})])])
    totals.clear()
    result = await bus.dispatch(Add(id="a", n=5), CTX)
    assert result.versions == {"counter-a": 3}
    assert totals == [6, 16]  # first on the stale copy, then on the fresh load
    again = await bus.dispatch(Add(id="a", n=1), CTX)
    assert again.versions == {"counter-a": 4}


async def test_a_failed_command_does_not_leave_its_changes_in_the_cache() -> None:
    store = CountingStore("calc")
    bus = CommandBus(calc, store)
    await bus.dispatch(Add(id="a", n=1), CTX)
    await store.append([StreamAppend("counter-a", 1, [NewEvent("calc.Added.v1", {"n": 10})])])
    await bus.dispatch(Add(id="a", n=1), CTX)  # conflicts once, then reloads
    totals.clear()
    await bus.dispatch(Add(id="a", n=1), CTX)
    assert totals == [13]


def test_the_cache_keeps_the_newest_copy_and_evicts_the_oldest() -> None:
    cache = AggregateCache(capacity=2)
    old, new = Counter("a"), Counter("a")
    new.version = 5
    cache.give_back(new)
    cache.give_back(old)
    assert cache.take(Counter, "a") is new
    for name in "xyz":
        cache.give_back(Counter(name))
    assert cache.take(Counter, "x") is None
    assert cache.take(Counter, "z") is not None


class Reset(Command):
    id: str


@calc.command(key="id")
def reset(cmd: Reset, counter: Counter) -> None:
    if counter.total == 0:
        return  # nothing to do: a decision no append would check
    counter.record(Added(n=-counter.total))


async def test_a_no_op_on_a_cached_copy_is_decided_again_on_a_fresh_load() -> None:
    store = CountingStore("calc")
    bus = CommandBus(calc, store)
    await bus.dispatch(Add(id="b", n=0), CTX)  # cached with total 0
    await store.append([StreamAppend("counter-b", 1, [NewEvent("calc.Added.v1", {"n": 7})])])
    await bus.dispatch(Reset(id="b"), CTX)
    events = await store.read_stream("counter-b")
    assert [e.data["n"] for e in events] == [0, 7, -7]


class Take(Command):
    id: str
    n: int


@calc.command(key="id")
def take(cmd: Take, counter: Counter) -> None:
    if counter.total < cmd.n:
        raise RuleViolation("not enough")
    counter.record(Added(n=-cmd.n))


async def test_a_refusal_on_a_cached_copy_is_decided_again_on_a_fresh_load() -> None:
    store = CountingStore("calc")
    bus = CommandBus(calc, store)
    await bus.dispatch(Add(id="c", n=1), CTX)  # cached with total 1
    await store.append([StreamAppend("counter-c", 1, [NewEvent("calc.Added.v1", {"n": 9})])])
    result = await bus.dispatch(Take(id="c", n=5), CTX)
    assert result.versions == {"counter-c": 3}
