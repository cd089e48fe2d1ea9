"""The event store contract, run against PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator

import pytest

from bicameral.envelope import NewEvent
from bicameral.errors import BackendError, BicameralError, ConfigurationError, OverloadedError
from bicameral.eventstore.postgres import PostgresEventStore
from bicameral.ports import EventStore, ReadStore, SnapshotStore, StreamAppend
from bicameral.readstore.postgres import PostgresReadStore
from bicameral.testing import EventStoreContract, SnapshotStoreContract, require_server

pytestmark = pytest.mark.postgres


@pytest.fixture
def _database(request: pytest.FixtureRequest) -> Iterator[None]:
    """Gives each test an empty database of its own, dropped after."""
    require_server("postgresql")
    from bicameral.testing.postgres import temporary_database

    with temporary_database("bicameral_es") as url:
        request.instance.url = url
        yield


@pytest.mark.usefixtures("_database")
class TestPostgresEventStore(EventStoreContract):
    durable = True
    url: str

    async def make_store(self) -> EventStore:
        return PostgresEventStore("svc", self.url)

    async def reopen(self, store: EventStore) -> EventStore:
        return PostgresEventStore("svc", self.url)


@pytest.mark.usefixtures("_database")
class TestPostgresSnapshots(SnapshotStoreContract):
    durable = True
    url: str

    async def make_store(self) -> SnapshotStore:
        return PostgresEventStore("svc", self.url)

    async def reopen(self, store: SnapshotStore) -> SnapshotStore:
        return PostgresEventStore("svc", self.url)


@pytest.fixture
def url() -> Iterator[str]:
    """Returns the URL of an empty database of its own, dropped after."""
    require_server("postgresql")
    from bicameral.testing.postgres import temporary_database

    with temporary_database("bicameral_es") as made:
        yield made


async def test_a_reused_event_id_fails_only_its_own_append_in_a_batch(url: str) -> None:
    store = PostgresEventStore("svc", url)
    await store.start()
    try:
        first = NewEvent("test.Happened.v1", {"n": 0})
        await store.append([StreamAppend("a", 0, [first])])
        outcomes = await asyncio.gather(
            store.append([StreamAppend("b", 0, [NewEvent("test.Happened.v1", {"n": 1})])]),
            store.append([StreamAppend("c", 0, [first])]),
            store.append([StreamAppend("d", 0, [NewEvent("test.Happened.v1", {"n": 2})])]),
            return_exceptions=True,
        )
        assert isinstance(outcomes[1], BicameralError)
        assert not isinstance(outcomes[1], BackendError)
        assert [await store.stream_version(s) for s in "abcd"] == [1, 1, 0, 1]
        assert [e.position for e in await store.read_all()] == [1, 2, 3]
    finally:
        await store.close()


async def test_several_stores_starting_at_once_create_the_schema_once(url: str) -> None:
    stores = [PostgresEventStore("svc", url) for _ in range(4)]
    await asyncio.gather(*(s.start() for s in stores))
    try:
        await stores[0].append([StreamAppend("a", 0, [NewEvent("test.Happened.v1", {})])])
        assert [await s.head() for s in stores] == [1, 1, 1, 1]
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def _exists(name: str) -> bool:
    from bicameral.drivers.postgres import PostgresUrl, connect
    from bicameral.testing.postgres import SERVER_URL

    conn = await connect(PostgresUrl(f"{SERVER_URL}/postgres"))
    try:
        return bool(await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))
    finally:
        await conn.close()


STORES: dict[str, Callable[[str], EventStore | ReadStore]] = {
    "event store": lambda url: PostgresEventStore("svc", url),
    "read store": PostgresReadStore,
}


@pytest.mark.parametrize("kind", STORES)
async def test_a_missing_database_is_refused_in_one_line_naming_it_unless_the_url_opts_in(
    kind: str,
) -> None:
    require_server("postgresql")
    from bicameral.testing.postgres import SERVER_URL, drop_database

    name = f"bicameral_missing_{uuid.uuid4().hex[:12]}"
    refused = STORES[kind](f"{SERVER_URL}/{name}")
    with pytest.raises(ConfigurationError, match=f"database {name} at .* does not exist") as e:
        await refused.start()
    assert "\n" not in e.value.detail
    assert not await _exists(name), "nothing was created"
    created = STORES[kind](f"{SERVER_URL}/{name}?create_database=true")
    try:
        await created.start()
        assert await _exists(name)
    finally:
        await created.close()
        await drop_database(name)


async def test_an_unreachable_server_is_a_backend_error() -> None:
    store = PostgresEventStore("svc", "postgresql://postgres@127.0.0.1:1/nothing")
    with pytest.raises(BackendError):
        await store.start()


async def test_appends_after_close_are_backend_errors(url: str) -> None:
    store = PostgresEventStore("svc", url)
    await store.start()
    await store.close()
    with pytest.raises(BackendError):
        await store.append([StreamAppend("a", 0, [NewEvent("test.Happened.v1", {})])])


async def test_a_reader_in_another_process_is_woken_by_notify(url: str) -> None:
    writer = PostgresEventStore("svc", url)
    reader = PostgresEventStore("svc", url)
    await writer.start()
    await reader.start()
    try:
        waiting = asyncio.create_task(reader.wait_for(0, 10.0))
        await asyncio.sleep(0.05)
        await writer.append([StreamAppend("a", 0, [NewEvent("test.Happened.v1", {})])])
        assert await waiting
        assert await reader.head() == 1
    finally:
        await writer.close()
        await reader.close()


async def test_an_append_without_events_writes_nothing_and_reports_the_head(url: str) -> None:
    store = PostgresEventStore("svc", url)
    await store.start()
    try:
        await store.append([StreamAppend("a", 0, [NewEvent("test.Happened.v1", {})])])
        result = await store.append([StreamAppend("a", 1, [])])
        assert (result.position, result.versions, result.envelopes) == (1, {"a": 1}, [])
        assert await store.head() == 1
    finally:
        await store.close()


async def test_a_full_append_queue_refuses_at_once_and_the_store_goes_on(url: str) -> None:
    store = PostgresEventStore("svc", url, max_queue=2)
    await store.start()
    try:
        # All six appends queue before the writer runs again: two fit, four are refused.
        outcomes = await asyncio.gather(
            *(
                store.append([StreamAppend(f"s-{i}", 0, [NewEvent("test.Happened.v1", {})])])
                for i in range(6)
            ),
            return_exceptions=True,
        )
        refused = [o for o in outcomes if isinstance(o, OverloadedError)]
        assert len(refused) == 4
        assert refused[0].status == 503
        assert await store.head() == 2
        await store.append([StreamAppend("later", 0, [NewEvent("test.Happened.v1", {})])])
        assert await store.head() == 3
    finally:
        await store.close()
