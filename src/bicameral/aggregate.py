"""Event-sourced aggregates: state rebuilt by applying events, new events recorded in order.

An aggregate enforces its invariants in its command methods and changes state only in
``apply``::

    class Product(Aggregate):
        on_hand: int = 0

        def receive(self, quantity: int) -> None:
            if quantity <= 0:
                raise RuleViolation("quantity must be positive")
            self.record(StockReceived(sku=self.id, quantity=quantity))

        def apply(self, event: Event) -> None:
            match event:
                case StockReceived(quantity=q):
                    self.on_hand += q
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import ClassVar, Generic, TypeVar, cast

from bicameral.envelope import NewEvent
from bicameral.errors import ConfigurationError
from bicameral.messages import Event, MessageRegistry
from bicameral.ports import EventStore, StreamAppend

__all__ = ["Aggregate", "AggregateCache", "Repository"]

A = TypeVar("A", bound="Aggregate")


class Aggregate:
    """Base of event-sourced aggregates; ``version`` counts the events applied so far."""

    stream_prefix: ClassVar[str] = ""
    """Prepended to the id to name the stream (defaults to the lower-cased class name + '-')."""

    def __init__(self, id: str) -> None:
        self.id = id
        self.version = 0
        self._pending: list[Event] = []

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "stream_prefix" not in cls.__dict__:
            cls.stream_prefix = f"{cls.__name__.lower()}-"

    @classmethod
    def stream_id(cls, id: str) -> str:
        """Returns the stream id of the aggregate with ``id``."""
        return f"{cls.stream_prefix}{id}"

    @property
    def exists(self) -> bool:
        """Returns True once the aggregate has any event, stored or pending."""
        return self.version > 0 or bool(self._pending)

    def apply(self, event: Event) -> None:
        """Changes state for one event; override it. Must not fail or record events."""
        raise NotImplementedError(f"{type(self).__name__}.apply")

    def record(self, *events: Event) -> None:
        """Applies new events and keeps them to be appended."""
        for event in events:
            self.apply(event)
            self._pending.append(event)

    @property
    def pending(self) -> Sequence[Event]:
        """Returns the events recorded since loading, not yet appended."""
        return tuple(self._pending)

    def replay(self, events: Iterable[Event]) -> None:
        """Applies stored events, advancing ``version`` by one each."""
        for event in events:
            self.apply(event)
            self.version += 1

    def collect(self, metadata: dict[str, object]) -> StreamAppend | None:
        """Returns the pending events as one append at the loaded version, then forgets them."""
        if not self._pending:
            return None
        append = StreamAppend(
            self.stream_id(self.id),
            self.version,
            [NewEvent.of(e, dict(metadata)) for e in self._pending],
        )
        self.version += len(self._pending)
        self._pending.clear()
        return append


class AggregateCache:
    """Aggregates kept in memory between commands, each lent to one command at a time.

    A command takes an aggregate out and gives it back only after its events were appended,
    so the cache holds committed state. Another process may append meanwhile: the cached
    version is then stale, the append conflicts, and the command bus runs the command again
    on a fresh load.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._items: OrderedDict[tuple[type[Aggregate], str], Aggregate] = OrderedDict()

    def take(self, cls: type[A], id: str) -> A | None:
        """Returns the cached aggregate and removes it, or None."""
        return cast("A | None", self._items.pop((cls, id), None))

    def give_back(self, aggregate: Aggregate) -> None:
        """Keeps ``aggregate`` (no pending events) for the next command; evicts the oldest."""
        if aggregate.pending or self.capacity <= 0:
            return
        key = (type(aggregate), aggregate.id)
        held = self._items.get(key)
        if held is not None and held.version >= aggregate.version:
            return
        self._items[key] = aggregate
        if len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def clear(self) -> None:
        """Forgets every aggregate."""
        self._items.clear()


class Repository(Generic[A]):
    """Loads aggregates of one class from an event store and tracks them for saving."""

    def __init__(
        self,
        cls: type[A],
        store: EventStore,
        registry: MessageRegistry,
        cache: AggregateCache | None = None,
    ) -> None:
        self.cls = cls
        self._store = store
        self._registry = registry
        self._cache = cache
        self._seen: dict[str, A] = {}
        self._from_cache: set[str] = set()

    async def get(self, id: str) -> A:
        """Returns the aggregate with ``id`` (new and empty when its stream does not exist)."""
        found = self._seen.get(id)
        if found is not None:
            return found
        if self._cache is not None:
            found = self._cache.take(self.cls, id)
            if found is not None:
                self._from_cache.add(id)
                self._seen[id] = found
                return found
        aggregate = self.cls(id)
        stored = await self._store.read_stream(self.cls.stream_id(id))
        aggregate.replay(cast(Event, self._registry.decode(e.type, e.data)) for e in stored)
        self._seen[id] = aggregate
        return aggregate

    def collect(self, metadata: dict[str, object]) -> list[StreamAppend]:
        """Returns the appends of every tracked aggregate with pending events.

        Refuses (ConfigurationError) an event whose class the registry cannot decode, since
        its stream could not be loaded again.
        """
        for aggregate in self._seen.values():
            for event in aggregate.pending:
                if self._registry.get(event.type_name) is not type(event):
                    raise ConfigurationError(
                        f"{type(event).__qualname__} ({event.type_name}) is not declared by the "
                        "service, so its stream could not be loaded again; declare it with "
                        "Service.events()",
                    )
        appends = (agg.collect(metadata) for agg in self._seen.values())
        return [a for a in appends if a is not None]

    @property
    def used_cache(self) -> bool:
        """Returns True when any aggregate came from the cache."""
        return bool(self._from_cache)

    @property
    def cache_unchecked(self) -> bool:
        """Returns True when a cached aggregate has no pending event.

        Only an append checks a cached copy's version, so a decision taken on a copy that
        appends nothing (a refusal, a no-op, a read) may rest on stale state.
        """
        return any(not self._seen[id].pending for id in self._from_cache)

    def release(self) -> None:
        """Gives every aggregate it loaded back to the cache (after a successful append)."""
        if self._cache is not None:
            for aggregate in self._seen.values():
                self._cache.give_back(aggregate)
