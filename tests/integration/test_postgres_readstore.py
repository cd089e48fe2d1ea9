"""The read store contract, run against PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bicameral.ports import ReadStore
from bicameral.readstore.postgres import PostgresReadStore
from bicameral.testing import ReadStoreContract, require_server

pytestmark = pytest.mark.postgres


@pytest.fixture(autouse=True)
def _database(request: pytest.FixtureRequest) -> Iterator[None]:
    """Gives each test an empty database of its own, dropped after."""
    require_server("postgresql")
    from bicameral.testing.postgres import temporary_database

    with temporary_database("bicameral_rs") as url:
        request.instance.url = url
        yield


class TestPostgresReadStore(ReadStoreContract):
    durable = True
    url: str

    async def make_store(self) -> ReadStore:
        return PostgresReadStore(self.url)

    async def reopen(self, store: ReadStore) -> ReadStore:
        return PostgresReadStore(self.url)
