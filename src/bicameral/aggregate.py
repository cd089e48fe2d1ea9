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

An aggregate with a long stream can load from a snapshot: ``class Product(Aggregate,
snapshot_every=100)`` makes a load that applied 100 events or more save the state it reached
(``snapshot_state()``, by default every attribute but ``id`` and ``version``, which must be
plain JSON), and later loads start from it and read only the events after it. Snapshots are
keyed by ``snapshot_key()``: the class's name and a fingerprint of its code (or
``snapshot_schema``, when set), so a changed class ignores the old ones and takes new ones.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import marshal
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, Generic, TypeVar, cast

import orjson

from bicameral.envelope import NewEvent
from bicameral.errors import ConfigurationError
from bicameral.messages import Event, MessageRegistry
from bicameral.ports import EventStore, Snapshot, SnapshotStore, StreamAppend

__all__ = ["Aggregate", "AggregateCache", "Repository"]

A = TypeVar("A", bound="Aggregate")
log = logging.getLogger("bicameral.aggregate")
_OWN = frozenset({"id", "version", "_pending"})


class Aggregate:
    """Base of event-sourced aggregates; ``version`` counts the events applied so far."""

    stream_prefix: ClassVar[str] = ""
    """Prepended to the id to name the stream (defaults to the lower-cased class name + '-')."""
    snapshot_every: ClassVar[int] = 0
    """A load that applies this many events or more saves a snapshot (0: never)."""
    snapshot_schema: ClassVar[str] = ""
    """Names the shape of the snapshot state; empty: a fingerprint of the class's code."""
    _snapshot_key: ClassVar[str | None] = None

    def __init__(self, id: str) -> None:
        self.id = id
        self.version = 0
        self._pending: list[Event] = []

    def __init_subclass__(
        cls,
        *,
        snapshot_every: int | None = None,
        snapshot_schema: str | None = None,
        **kwargs: object,
    ) -> None:
        super().__init_subclass__(**kwargs)
        if "stream_prefix" not in cls.__dict__:
            cls.stream_prefix = f"{cls.__name__.lower()}-"
        if snapshot_every is not None:
            cls.snapshot_every = snapshot_every
        if snapshot_schema is not None:
            cls.snapshot_schema = snapshot_schema
        every = cls.snapshot_every
        if isinstance(every, bool) or not isinstance(every, int) or every < 0:
            raise ConfigurationError(
                f"{cls.__qualname__}: snapshot_every must be a whole number >= 0, not {every!r}"
            )
        cls._snapshot_key = None

    @classmethod
    def snapshot_key(cls) -> str:
        """Returns the schema this class's snapshots are saved under and loaded by."""
        key = cls.__dict__.get("_snapshot_key")
        if key is None:
            shape = cls.snapshot_schema or _fingerprint(cls)
            key = f"{cls.__module__}.{cls.__qualname__}:{shape}"
            cls._snapshot_key = key
        return cast(str, key)

    def snapshot_state(self) -> dict[str, Any]:
        """Returns the state a snapshot keeps: every attribute but id, version and pending events.

        Override it, with ``restore_state``, for state that is not plain JSON (a snapshot whose
        state does not come back from JSON unchanged is not saved).
        """
        return {k: v for k, v in vars(self).items() if k not in _OWN}

    def restore_state(self, state: dict[str, Any]) -> None:
        """Sets the state ``snapshot_state`` returned, on an aggregate fresh from ``__init__``."""
        for name, value in state.items():
            if name not in _OWN:
                setattr(self, name, value)

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
        snapshots: SnapshotStore | None = None,
    ) -> None:
        self.cls = cls
        self._store = store
        self._registry = registry
        self._cache = cache
        self._snapshots = snapshots if cls.snapshot_every > 0 else None
        self._seen: dict[str, A] = {}
        self._from_cache: set[str] = set()
        self._from_snapshot: set[str] = set()

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
        aggregate = await self._load(id)
        self._seen[id] = aggregate
        return aggregate

    async def _load(self, id: str) -> A:
        stream = self.cls.stream_id(id)
        snapshots = self._snapshots
        aggregate = None
        if snapshots is not None:
            found = await snapshots.load_snapshot(stream, self.cls.snapshot_key())
            if found is not None:
                aggregate = _restored(self.cls, id, found)
        if aggregate is None:
            aggregate = self.cls(id)
        else:
            self._from_snapshot.add(id)
        stored = await self._store.read_stream(stream, aggregate.version)
        aggregate.replay(cast(Event, self._registry.decode(e.type, e.data)) for e in stored)
        if snapshots is not None and len(stored) >= self.cls.snapshot_every:
            await _take_snapshot(snapshots, stream, aggregate)
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

    @property
    def used_snapshot(self) -> bool:
        """Returns True when any aggregate was loaded from a snapshot."""
        return bool(self._from_snapshot)

    @property
    def snapshot_unchecked(self) -> bool:
        """Returns True when an aggregate loaded from a snapshot has no pending event.

        As with a cached copy, only a decision that appends is checked by the append.
        """
        return any(not self._seen[id].pending for id in self._from_snapshot)

    def release(self) -> None:
        """Gives every aggregate it loaded back to the cache (after a successful append)."""
        if self._cache is not None:
            for aggregate in self._seen.values():
                self._cache.give_back(aggregate)


def _fingerprint(cls: type[Aggregate]) -> str:
    """Returns a digest of the code of ``cls`` and its bases below Aggregate.

    The source text where it can be found; otherwise the compiled code of its functions.
    """
    digest = hashlib.sha256()
    for klass in cls.__mro__:
        if klass is Aggregate or klass is object:
            continue
        try:
            digest.update(inspect.getsource(klass).encode())
            continue
        except (OSError, TypeError):
            pass
        digest.update(klass.__qualname__.encode())
        for name, value in sorted(vars(klass).items()):
            digest.update(name.encode())
            code = getattr(getattr(value, "__func__", value), "__code__", None)
            if code is not None:
                digest.update(marshal.dumps(code))
            elif isinstance(value, str | int | float | bool | bytes | tuple):
                digest.update(repr(value).encode())
    return digest.hexdigest()[:16]


_UNSNAPSHOTTABLE: set[type[Aggregate]] = set()


def _restored(cls: type[A], id: str, snapshot: Snapshot) -> A | None:
    """Returns the aggregate as of ``snapshot``, or None when its state cannot be restored."""
    aggregate = cls(id)
    try:
        aggregate.restore_state(snapshot.state)
    except Exception as exc:
        log.warning("snapshot of %s not used: %s", snapshot.stream_id, exc)
        return None
    aggregate.version = snapshot.version
    return aggregate


async def _take_snapshot(store: SnapshotStore, stream: str, aggregate: Aggregate) -> None:
    """Saves the aggregate's state; never fails the command that loaded it."""
    cls = type(aggregate)
    try:
        state = aggregate.snapshot_state()
        plain = orjson.loads(orjson.dumps(state)) == state
    except (TypeError, ValueError):
        plain = False
    if not plain:
        if cls not in _UNSNAPSHOTTABLE:
            _UNSNAPSHOTTABLE.add(cls)
            log.warning(
                "%s: no snapshot taken, its snapshot_state() is not plain JSON (override "
                "snapshot_state and restore_state)",
                cls.__qualname__,
            )
        return
    try:
        await store.save_snapshot(Snapshot(stream, cls.snapshot_key(), aggregate.version, state))
    except Exception as exc:
        log.warning("snapshot of %s not saved: %s", stream, exc)
