"""MemoryEventStore: the event store port in a process's memory, for tests and demos."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import orjson

from bicameral.envelope import Envelope
from bicameral.errors import ConcurrencyError
from bicameral.ports import AppendResult, Snapshot, StreamAppend

__all__ = ["MemoryEventStore"]


class MemoryEventStore:
    """Keeps every event in lists; appends are atomic because they never await midway."""

    def __init__(self, service: str) -> None:
        self.service = service
        self._log: list[Envelope] = []
        self._streams: dict[str, list[Envelope]] = {}
        self._keys: dict[str, AppendResult] = {}
        self._checkpoints: dict[str, int] = {}
        self._snapshots: dict[str, tuple[str, int, bytes]] = {}
        self._changed = asyncio.Condition()

    async def start(self) -> None:
        """Does nothing: memory needs no schema."""

    async def close(self) -> None:
        """Does nothing: memory holds no connections."""

    async def ping(self) -> None:
        """Returns at once: memory is always there."""

    async def append(
        self,
        appends: Sequence[StreamAppend],
        *,
        idempotency_key: str | None = None,
        request_hash: str = "",
    ) -> AppendResult:
        """Writes every append atomically, or raises ConcurrencyError and writes nothing."""
        if idempotency_key is not None and idempotency_key in self._keys:
            earlier = self._keys[idempotency_key]
            return AppendResult(earlier.position, earlier.versions, earlier.request_hash, True)
        for append in appends:
            actual = len(self._streams.get(append.stream_id, ()))
            if append.expected_version is not None and append.expected_version != actual:
                raise ConcurrencyError(append.stream_id, append.expected_version, actual)
        now = datetime.now(UTC)
        written: list[Envelope] = []
        versions: dict[str, int] = {}
        for append in appends:
            stream = self._streams.setdefault(append.stream_id, [])
            for new in append.events:
                env = Envelope(
                    new.id,
                    new.type,
                    self.service,
                    append.stream_id,
                    now,
                    len(stream) + 1,
                    len(self._log) + 1,
                    new.data,
                    new.metadata,
                )
                stream.append(env)
                self._log.append(env)
                written.append(env)
            versions[append.stream_id] = len(stream)
        result = AppendResult(len(self._log), versions, request_hash, False, written)
        if idempotency_key is not None:
            self._keys[idempotency_key] = AppendResult(result.position, versions, request_hash)
        if written:
            async with self._changed:
                self._changed.notify_all()
        return result

    async def read_stream(self, stream_id: str, after_version: int = 0) -> list[Envelope]:
        """Returns the events of one stream with version above ``after_version``, in order."""
        return list(self._streams.get(stream_id, ())[after_version:])

    async def stream_version(self, stream_id: str) -> int:
        """Returns the current version of a stream (0 when it does not exist)."""
        return len(self._streams.get(stream_id, ()))

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[Envelope]:
        """Returns up to ``limit`` events with position above ``after_position``, in order."""
        return self._log[after_position : after_position + limit]

    async def head(self) -> int:
        """Returns the highest position (0 when empty)."""
        return len(self._log)

    async def wait_for(self, after_position: int, timeout: float) -> bool:
        """Returns True once a position above ``after_position`` exists, False on timeout."""
        if len(self._log) > after_position:
            return True
        async with self._changed:
            try:
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: len(self._log) > after_position), timeout
                )
            except TimeoutError:
                return False
        return True

    async def idempotent_result(self, key: str) -> AppendResult | None:
        """Returns the result recorded under an idempotency key, or None."""
        return self._keys.get(key)

    async def load_checkpoint(self, name: str) -> int:
        """Returns a command-side checkpoint (0 if never saved)."""
        return self._checkpoints.get(name, 0)

    async def save_checkpoint(
        self, name: str, position: int, *, expected: int | None = None
    ) -> bool:
        """Writes a command-side checkpoint (only while at ``expected``, if given)."""
        if expected is not None and self._checkpoints.get(name, 0) != expected:
            return False
        self._checkpoints[name] = position
        return True

    async def checkpoints(self) -> dict[str, int]:
        """Returns every command-side checkpoint by name."""
        return dict(self._checkpoints)

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        """Keeps ``snapshot`` (as JSON) unless one of its schema at its version or above is kept."""
        held = self._snapshots.get(snapshot.stream_id)
        if held is not None and held[0] == snapshot.schema and held[1] >= snapshot.version:
            return
        state = orjson.dumps(snapshot.state)
        self._snapshots[snapshot.stream_id] = (snapshot.schema, snapshot.version, state)

    async def load_snapshot(self, stream_id: str, schema: str) -> Snapshot | None:
        """Returns the stream's snapshot if it was taken with ``schema``, else None."""
        held = self._snapshots.get(stream_id)
        if held is None or held[0] != schema:
            return None
        return Snapshot(stream_id, schema, held[1], orjson.loads(held[2]))
