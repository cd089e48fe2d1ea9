"""The event store contract, run against PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bicameral.eventstore.postgres import PostgresEventStore
from bicameral.ports import EventStore
from bicameral.testing import EventStoreContract, require_server

pytestmark = pytest.mark.postgres


@pytest.fixture(autouse=True)
def _database(request: pytest.FixtureRequest) -> Iterator[None]:
    """Gives each test an empty database of its own, dropped after."""
    require_server("postgresql")
    from bicameral.testing.postgres import temporary_database

    with temporary_database("bicameral_es") as url:
        request.instance.url = url
        yield


class TestPostgresEventStore(EventStoreContract):
    durable = True
    url: str

    async def make_store(self) -> EventStore:
        return PostgresEventStore("svc", self.url)

    async def reopen(self, store: EventStore) -> EventStore:
        return PostgresEventStore("svc", self.url)
