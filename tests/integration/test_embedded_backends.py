"""The port contracts, run against the memory and SQLite backends."""

from __future__ import annotations

from pathlib import Path

import pytest

from bicameral.eventstore.memory import MemoryEventStore
from bicameral.eventstore.sqlite import SqliteEventStore
from bicameral.ports import EventStore, ReadStore, SnapshotStore, Transport
from bicameral.readstore.memory import MemoryReadStore
from bicameral.readstore.sqlite import SqliteReadStore
from bicameral.testing import (
    EventStoreContract,
    ReadStoreContract,
    SnapshotStoreContract,
    TransportContract,
)
from bicameral.transport.memory import MemoryTransport
from bicameral.transport.sqlite import SqliteTransport


@pytest.fixture(autouse=True)
def _tmp(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    request.instance.tmp = tmp_path


class TestMemoryEventStore(EventStoreContract):
    async def make_store(self) -> EventStore:
        return MemoryEventStore("svc")


class TestSqliteEventStore(EventStoreContract):
    durable = True
    tmp: Path

    async def make_store(self) -> EventStore:
        return SqliteEventStore("svc", str(self.tmp / "events.db"))

    async def reopen(self, store: EventStore) -> EventStore:
        return SqliteEventStore("svc", str(self.tmp / "events.db"))


class TestMemorySnapshots(SnapshotStoreContract):
    async def make_store(self) -> SnapshotStore:
        return MemoryEventStore("svc")


class TestSqliteSnapshots(SnapshotStoreContract):
    durable = True
    tmp: Path

    async def make_store(self) -> SnapshotStore:
        return SqliteEventStore("svc", str(self.tmp / "events.db"))

    async def reopen(self, store: SnapshotStore) -> SnapshotStore:
        return SqliteEventStore("svc", str(self.tmp / "events.db"))


class TestMemoryReadStore(ReadStoreContract):
    async def make_store(self) -> ReadStore:
        return MemoryReadStore()


class TestSqliteReadStore(ReadStoreContract):
    durable = True
    tmp: Path

    async def make_store(self) -> ReadStore:
        return SqliteReadStore(str(self.tmp / "reads.db"))

    async def reopen(self, store: ReadStore) -> ReadStore:
        return SqliteReadStore(str(self.tmp / "reads.db"))


class TestMemoryTransport(TransportContract):
    async def make_transport(self) -> Transport:
        return MemoryTransport()


class TestSqliteTransport(TransportContract):
    tmp: Path

    async def make_transport(self) -> Transport:
        return SqliteTransport(str(self.tmp / "transport.db"))
