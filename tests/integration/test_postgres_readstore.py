"""The read store contract, run against PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from bicameral.errors import DocumentError
from bicameral.ports import ReadStore
from bicameral.readstore.postgres import PostgresReadStore
from bicameral.testing import ReadStoreContract, require_server

pytestmark = pytest.mark.postgres


@pytest.fixture
def _database(request: pytest.FixtureRequest) -> Iterator[None]:
    """Gives each test an empty database of its own, dropped after."""
    require_server("postgresql")
    from bicameral.testing.postgres import temporary_database

    with temporary_database("bicameral_rs") as url:
        request.instance.url = url
        yield


@pytest.mark.usefixtures("_database")
class TestPostgresReadStore(ReadStoreContract):
    durable = True
    url: str

    async def make_store(self) -> ReadStore:
        return PostgresReadStore(self.url)

    async def reopen(self, store: ReadStore) -> ReadStore:
        return PostgresReadStore(self.url)


@pytest.fixture
def url() -> Iterator[str]:
    """Returns the URL of an empty database of its own, dropped after."""
    require_server("postgresql")
    from bicameral.testing.postgres import temporary_database

    with temporary_database("bicameral_rs") as made:
        yield made


async def test_stores_starting_and_declaring_at_once_all_succeed(url: str) -> None:
    stores = [PostgresReadStore(url) for _ in range(4)]
    await asyncio.gather(*(s.start() for s in stores))
    try:
        await asyncio.gather(*(s.declare("p_v1_items", ["owner", "n"]) for s in stores))
        assert await stores[0].commit("p.v1:svc", 0, 1, {("p_v1_items", "k"): {"owner": "x"}})
        assert [k for k, _ in await stores[3].find("p_v1_items", "owner", "x")] == ["k"]
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_a_document_the_server_refuses_is_a_document_error(url: str) -> None:
    """A value jsonb cannot hold is poison for the projector, not a backend that is away."""
    store = PostgresReadStore(url)
    await store.start()
    try:
        await store.declare("p_v1_items")
        with pytest.raises(DocumentError):
            await store.commit("p.v1:svc", 0, 1, {("p_v1_items", "k"): {"text": "a\u0000b"}})
        assert await store.checkpoint("p.v1:svc") == 0
        assert await store.commit("p.v1:svc", 0, 1, {("p_v1_items", "k"): {"text": "ab"}})
    finally:
        await store.close()
