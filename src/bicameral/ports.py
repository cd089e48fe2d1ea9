"""The ports: what the core needs from an event store, a read store and a transport.

Each backend implements one port in its own module (``eventstore.sqlite``, ``readstore.redis``,
...), named ``<Backend><Port>``; ``bicameral.testing.contracts`` holds the one test suite every
adapter of a port must pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from bicameral.commits import Commits
from bicameral.envelope import Envelope, NewEvent
from bicameral.parking import Failure, Park, ParkedSequence, Skipped

__all__ = [
    "NO_STREAM",
    "AppendResult",
    "Changes",
    "CommitFeed",
    "EventSource",
    "EventStore",
    "ReadStore",
    "Snapshot",
    "SnapshotStore",
    "StreamAppend",
    "Subscription",
    "Transport",
]

NO_STREAM = 0
"""Expected version of a stream that must not exist yet."""

Changes = Mapping[tuple[str, str], dict[str, Any] | None]
"""Read-model changes of one batch: ``(collection, key) -> document``, None to delete."""


@dataclass(frozen=True, slots=True)
class StreamAppend:
    """Events to add to one stream, which must be at ``expected_version`` (None: any version)."""

    stream_id: str
    expected_version: int | None
    events: Sequence[NewEvent]


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What an append wrote: the last position and each stream's new version.

    ``replayed`` is True when the idempotency key was seen before and nothing was written;
    the fields then describe the first append made with that key.
    """

    position: int
    versions: dict[str, int]
    request_hash: str = ""
    replayed: bool = False
    envelopes: list[Envelope] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An aggregate's state after ``version`` events of its stream, in the shape ``schema`` names.

    ``state`` is a JSON document; ``schema`` names the aggregate class and the shape of its
    state (``Aggregate.snapshot_key()``), so a changed class never restores an old snapshot.
    """

    stream_id: str
    schema: str
    version: int
    state: dict[str, Any]


@runtime_checkable
class SnapshotStore(Protocol):
    """Aggregate snapshots kept beside a service's events, at most one per stream.

    A snapshot is only a shortcut for loading: the events after it are still read, and the
    append's expected-version check still guards every decision taken on it.
    """

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        """Writes ``snapshot`` as its stream's one snapshot, unless the stream already has one
        of the same schema at the same or a higher version (then writes nothing)."""
        ...

    async def load_snapshot(self, stream_id: str, schema: str) -> Snapshot | None:
        """Returns the stream's snapshot if it was taken with ``schema``, else None."""
        ...


@runtime_checkable
class EventSource(Protocol):
    """A log of one service's events that can be read in position order and tailed."""

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[Envelope]:
        """Returns up to ``limit`` events with position above ``after_position``, in order."""
        ...

    async def head(self) -> int:
        """Returns the highest position a reader can see now (0 when empty)."""
        ...

    async def wait_for(self, after_position: int, timeout: float) -> bool:
        """Returns True once a position above ``after_position`` is visible, False on timeout."""
        ...


@runtime_checkable
class EventStore(EventSource, Protocol):
    """A service's append-only event log: streams with versions, one global position order."""

    service: str

    async def start(self) -> None:
        """Connects and creates or upgrades the schema (idempotent)."""
        ...

    async def close(self) -> None:
        """Releases connections and background tasks."""
        ...

    async def ping(self) -> None:
        """Returns once the backend answered a round trip; raises BackendError if it cannot.

        Readiness (``/health/ready``) calls it with a deadline of its own.
        """
        ...

    async def append(
        self,
        appends: Sequence[StreamAppend],
        *,
        idempotency_key: str | None = None,
        request_hash: str = "",
    ) -> AppendResult:
        """Writes every append atomically, or raises ConcurrencyError and writes nothing.

        With ``idempotency_key`` already recorded, writes nothing and returns the first result
        with ``replayed=True``; otherwise records the key in the same transaction.
        """
        ...

    async def read_stream(self, stream_id: str, after_version: int = 0) -> list[Envelope]:
        """Returns the events of one stream with version above ``after_version``, in order."""
        ...

    async def stream_version(self, stream_id: str) -> int:
        """Returns the current version of a stream (0 when it does not exist)."""
        ...

    async def idempotent_result(self, key: str) -> AppendResult | None:
        """Returns the result recorded under an idempotency key, or None."""
        ...

    async def load_checkpoint(self, name: str) -> int:
        """Returns a command-side checkpoint (relay, subscription), 0 if never saved."""
        ...

    async def save_checkpoint(
        self, name: str, position: int, *, expected: int | None = None
    ) -> bool:
        """Writes a command-side checkpoint and returns True.

        With ``expected``, writes only while the checkpoint is at ``expected`` (0: never
        saved), else returns False and changes nothing (compare-and-set): a relay or reaction
        runner that lost its lease cannot move back a checkpoint its successor moved.
        """
        ...

    async def checkpoints(self) -> dict[str, int]:
        """Returns every command-side checkpoint by name."""
        ...

    async def event_types(self) -> set[str]:
        """Returns every event type (``name.v<n>``) stored in the log."""
        ...


@runtime_checkable
class ReadStore(Protocol):
    """Query-side documents by collection and key, changed atomically with checkpoints."""

    async def start(self) -> None:
        """Connects and creates or upgrades the schema (idempotent)."""
        ...

    async def close(self) -> None:
        """Releases connections."""
        ...

    async def ping(self) -> None:
        """Returns once the backend answered a round trip; raises BackendError if it cannot.

        Readiness (``/health/ready``) calls it with a deadline of its own.
        """
        ...

    async def declare(self, collection: str, indexes: Sequence[str] = ()) -> None:
        """Creates a collection and its indexed fields if missing."""
        ...

    async def get(self, collection: str, key: str) -> dict[str, Any] | None:
        """Returns one document, or None."""
        ...

    async def get_many(self, collection: str, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Returns the documents found among ``keys``, by key (missing keys are left out)."""
        ...

    async def find(
        self, collection: str, field: str, value: Any
    ) -> list[tuple[str, dict[str, Any]]]:
        """Returns ``(key, document)`` pairs whose indexed ``field`` equals ``value``, by key."""
        ...

    async def all(self, collection: str) -> list[tuple[str, dict[str, Any]]]:
        """Returns every ``(key, document)`` pair of a collection, ordered by key."""
        ...

    async def commit(
        self,
        checkpoint: str,
        expected: int,
        position: int,
        changes: Changes,
        parked: Sequence[Park] = (),
    ) -> bool:
        """Writes ``changes`` and ``parked`` and moves ``checkpoint`` from ``expected`` to
        ``position``, atomically.

        Each park, in order, opens a sequence for its consumer and key (one with a failure) or
        joins the one open (one without). Returns False and writes nothing when the checkpoint
        is not at ``expected``, or when a park would open a sequence already open or join one
        that is not (it was retried or skipped meanwhile).
        """
        ...

    async def checkpoint(self, checkpoint: str) -> int:
        """Returns a checkpoint's position (0 if never committed)."""
        ...

    async def checkpoints(self) -> dict[str, int]:
        """Returns every checkpoint by name."""
        ...

    async def drop(self, collections: Sequence[str], checkpoints: Sequence[str]) -> None:
        """Deletes collections and checkpoints (a rebuild's discarded version)."""
        ...

    async def parked_keys(self, consumer: str) -> set[str]:
        """Returns the keys of ``consumer`` that have an open parked sequence."""
        ...

    async def parked(self) -> list[ParkedSequence]:
        """Returns every parked sequence with its events, by first failure time."""
        ...

    async def parked_sequence(self, sequence: str) -> ParkedSequence | None:
        """Returns one parked sequence with its events, or None."""
        ...

    async def unpark(
        self, sequence: str, event_id: str, changes: Changes, failure: Failure | None = None
    ) -> bool:
        """Settles the first event of a parked sequence, which must be ``event_id``.

        Without ``failure``: writes ``changes`` and removes the event (and the sequence with its
        last event). With one: adds its attempts to the sequence's and records it as the last
        failure, writing nothing else. Returns False, writing nothing, when the sequence does
        not start with ``event_id``.
        """
        ...

    async def skip(self, sequence: str, reason: str, by: str) -> Skipped | None:
        """Removes a parked sequence and records who skipped it, when and why; None if unknown."""
        ...

    async def skipped(self) -> list[Skipped]:
        """Returns the records of skipped sequences, oldest first."""
        ...

    async def acquire_lease(self, name: str, owner: str, ttl: float) -> bool:
        """Takes or renews lease ``name`` for ``owner`` for ``ttl`` seconds.

        Returns False, changing nothing, while another owner holds it unexpired.
        """
        ...

    async def release_lease(self, name: str, owner: str) -> None:
        """Gives up lease ``name`` if ``owner`` holds it."""
        ...

    async def leases(self, prefix: str) -> dict[str, str]:
        """Returns the unexpired leases whose names start with ``prefix``: name -> owner."""
        ...


@runtime_checkable
class CommitFeed(Protocol):
    """A read store that tells this process when any process commits to it (its change feed)."""

    def commits(self) -> Commits:
        """Returns this store's one fan-out of commit notices in this process: the names of
        the checkpoints each ``commit`` moved, whichever process committed."""
        ...


@runtime_checkable
class Subscription(Protocol):
    """A durable consumer of one source service's events, in position order."""

    async def fetch(self, max_events: int, timeout: float) -> list[Envelope]:
        """Returns the next events (at least once; may repeat after a crash), [] on timeout."""
        ...

    async def ack(self, envelopes: Sequence[Envelope]) -> None:
        """Writes that ``envelopes`` were handled, so they are not delivered again."""
        ...

    async def close(self) -> None:
        """Stops consuming."""
        ...


@runtime_checkable
class Transport(Protocol):
    """Carries each service's events to the services that subscribe to them."""

    async def start(self) -> None:
        """Connects and creates streams if missing (idempotent)."""
        ...

    async def close(self) -> None:
        """Releases connections."""
        ...

    async def ping(self) -> None:
        """Returns once the backend answered a round trip; raises BackendError if it cannot.

        Readiness (``/health/ready``) calls it with a deadline of its own.
        """
        ...

    async def publish(self, source: str, envelopes: Sequence[Envelope]) -> None:
        """Writes events of ``source`` in order; an id published before is dropped as duplicate."""
        ...

    async def subscribe(self, source: str, consumer: str, after_position: int) -> Subscription:
        """Returns a durable subscription to ``source`` delivering positions above the given one."""
        ...

    async def head(self, source: str) -> int:
        """Returns the highest position of ``source`` the transport holds (0 when none)."""
        ...
