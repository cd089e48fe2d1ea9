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

from collections.abc import Iterable, Sequence
from typing import ClassVar, Generic, TypeVar, cast

from bicameral.envelope import NewEvent
from bicameral.errors import ConfigurationError
from bicameral.messages import Event, MessageRegistry
from bicameral.ports import EventStore, StreamAppend

__all__ = ["Aggregate", "Repository"]

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


class Repository(Generic[A]):
    """Loads aggregates of one class from an event store and tracks them for saving."""

    def __init__(self, cls: type[A], store: EventStore, registry: MessageRegistry) -> None:
        self.cls = cls
        self._store = store
        self._registry = registry
        self._seen: dict[str, A] = {}

    async def get(self, id: str) -> A:
        """Returns the aggregate with ``id`` (new and empty when its stream does not exist)."""
        found = self._seen.get(id)
        if found is not None:
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
