"""MemoryReadStore: the read store port in a process's memory, for tests and demos."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from bicameral.commits import Commits
from bicameral.envelope import Envelope
from bicameral.parking import Failure, Park, ParkedSequence, Skipped
from bicameral.ports import Changes

__all__ = ["MemoryReadStore"]


class MemoryReadStore:
    """Documents in dicts; a commit applies its changes without awaiting, so it is atomic.

    ``clock`` (seconds, monotonic) times the leases; tests pass their own to expire them.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._collections: dict[str, dict[str, dict[str, Any]]] = {}
        self._checkpoints: dict[str, int] = {}
        self._leases: dict[str, tuple[str, float]] = {}
        self._headers: dict[str, dict[str, Any]] = {}
        self._parked: dict[str, list[Envelope]] = {}
        self._open: dict[tuple[str, str], str] = {}
        self._skipped: list[Skipped] = []
        self._commits = Commits(name="memory read store")

    async def start(self) -> None:
        """Does nothing: memory needs no schema."""

    async def close(self) -> None:
        """Does nothing: memory holds no connections."""

    async def ping(self) -> None:
        """Returns at once: memory is always there."""

    async def declare(self, collection: str, indexes: Sequence[str] = ()) -> None:
        """Creates a collection if missing (fields are matched by scanning)."""
        self._collections.setdefault(collection, {})

    async def get(self, collection: str, key: str) -> dict[str, Any] | None:
        """Returns a copy of one document, or None."""
        doc = self._collections.get(collection, {}).get(key)
        return copy.deepcopy(doc) if doc is not None else None

    async def get_many(self, collection: str, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Returns copies of the documents found among ``keys``."""
        docs = self._collections.get(collection, {})
        return {k: copy.deepcopy(docs[k]) for k in keys if k in docs}

    async def find(
        self, collection: str, field: str, value: Any
    ) -> list[tuple[str, dict[str, Any]]]:
        """Returns ``(key, document)`` pairs whose ``field`` equals ``value``, by key."""
        docs = self._collections.get(collection, {})
        return [
            (key, copy.deepcopy(doc))
            for key, doc in sorted(docs.items())
            if doc.get(field) == value
        ]

    async def all(self, collection: str) -> list[tuple[str, dict[str, Any]]]:
        """Returns every ``(key, document)`` pair of a collection, by key."""
        docs = self._collections.get(collection, {})
        return [(key, copy.deepcopy(doc)) for key, doc in sorted(docs.items())]

    async def commit(
        self,
        checkpoint: str,
        expected: int,
        position: int,
        changes: Changes,
        parked: Sequence[Park] = (),
    ) -> bool:
        """Applies ``changes`` and ``parked`` and moves the checkpoint, if at ``expected``."""
        if self._checkpoints.get(checkpoint, 0) != expected or not self._parkable(parked):
            return False
        self._write(changes)
        for park in parked:
            where = (park.consumer, park.key)
            if park.failure is not None:
                self._open[where] = park.sequence
                self._headers[park.sequence] = park.header()
                self._parked[park.sequence] = []
            self._parked[self._open[where]].append(park.envelope)
        self._checkpoints[checkpoint] = position
        self._commits.publish((checkpoint,))
        return True

    def commits(self) -> Commits:
        """Returns the notices of this store's commits (all made in this process)."""
        return self._commits

    def _parkable(self, parked: Sequence[Park]) -> bool:
        opened = set(self._open)
        for park in parked:
            where = (park.consumer, park.key)
            if (park.failure is not None) == (where in opened):
                return False
            opened.add(where)
        return True

    def _write(self, changes: Changes) -> None:
        # Copies every document before writing any, so a value that cannot be copied
        # leaves the store as it was.
        copies = {where: copy.deepcopy(doc) for where, doc in changes.items()}
        for (collection, key), doc in copies.items():
            docs = self._collections.setdefault(collection, {})
            if doc is None:
                docs.pop(key, None)
            else:
                docs[key] = doc

    async def checkpoint(self, checkpoint: str) -> int:
        """Returns a checkpoint's position (0 if never committed)."""
        return self._checkpoints.get(checkpoint, 0)

    async def checkpoints(self) -> dict[str, int]:
        """Returns every checkpoint by name."""
        return dict(self._checkpoints)

    async def drop(self, collections: Sequence[str], checkpoints: Sequence[str]) -> None:
        """Deletes collections and checkpoints."""
        for name in collections:
            self._collections.pop(name, None)
        for name in checkpoints:
            self._checkpoints.pop(name, None)

    async def parked_keys(self, consumer: str) -> set[str]:
        """Returns the keys of ``consumer`` with an open parked sequence."""
        return {key for (c, key) in self._open if c == consumer}

    def _sequence(self, sequence: str) -> ParkedSequence | None:
        header = self._headers.get(sequence)
        if header is None:
            return None
        return ParkedSequence.of(header, self._parked[sequence])

    async def parked(self) -> list[ParkedSequence]:
        """Returns every parked sequence, by first failure time."""
        found = [self._sequence(s) for s in self._headers]
        return sorted((s for s in found if s), key=lambda s: (s.first_failed, s.id))

    async def parked_sequence(self, sequence: str) -> ParkedSequence | None:
        """Returns one parked sequence, or None."""
        return self._sequence(sequence)

    async def unpark(
        self, sequence: str, event_id: str, changes: Changes, failure: Failure | None = None
    ) -> bool:
        """Settles the first event of a sequence, if it is ``event_id``."""
        events = self._parked.get(sequence)
        if not events or events[0].id != event_id:
            return False
        header = self._headers[sequence]
        if failure is not None:
            header["attempts"] += failure.attempts
            header.update(
                error=failure.error,
                message=failure.message,
                traceback=failure.traceback,
                last_failed=failure.at.isoformat(),
            )
            return True
        self._write(changes)
        events.pop(0)
        if not events:
            self._forget(sequence)
        return True

    def _forget(self, sequence: str) -> None:
        header = self._headers.pop(sequence)
        del self._parked[sequence]
        del self._open[(header["consumer"], header["key"])]

    async def skip(self, sequence: str, reason: str, by: str) -> Skipped | None:
        """Removes a parked sequence and records the skip."""
        found = self._sequence(sequence)
        if found is None:
            return None
        record = Skipped.of(found, reason, by, datetime.now(UTC))
        self._forget(sequence)
        self._skipped.append(record)
        return record

    async def skipped(self) -> list[Skipped]:
        """Returns the skip records, oldest first."""
        return list(self._skipped)

    async def acquire_lease(self, name: str, owner: str, ttl: float) -> bool:
        """Takes or renews a lease unless another owner holds it unexpired."""
        now = self._clock()
        holder = self._leases.get(name)
        if holder is not None and holder[0] != owner and holder[1] > now:
            return False
        self._leases[name] = (owner, now + ttl)
        return True

    async def release_lease(self, name: str, owner: str) -> None:
        """Gives up a lease held by ``owner``."""
        if self._leases.get(name, ("", 0.0))[0] == owner:
            del self._leases[name]

    async def leases(self, prefix: str) -> dict[str, str]:
        """Returns unexpired leases under ``prefix``."""
        now = self._clock()
        return {
            n: owner
            for n, (owner, until) in self._leases.items()
            if n.startswith(prefix) and until > now
        }
