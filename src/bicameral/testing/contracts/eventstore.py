"""The contract every EventStore adapter passes: order, conflicts, atomicity, positions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime

import pytest

from bicameral.envelope import NewEvent
from bicameral.errors import ConcurrencyError
from bicameral.ports import EventStore, StreamAppend

__all__ = ["EventStoreContract"]


def events(n: int, kind: str = "test.Happened.v1") -> list[NewEvent]:
    """Returns ``n`` new events numbered from 0."""
    return [NewEvent(kind, {"n": i}, {"correlation_id": "c"}) for i in range(n)]


def append(stream: str, expected: int | None, n: int = 1) -> StreamAppend:
    """Returns an append of ``n`` events to ``stream`` at ``expected``."""
    return StreamAppend(stream, expected, events(n))


class EventStoreContract:
    """Subclass per backend and implement ``make_store``; ``durable`` stores also ``reopen``."""

    durable = False
    concurrency = 20

    async def make_store(self) -> EventStore:
        """Returns a new, empty, not yet started store for service ``svc``."""
        raise NotImplementedError

    async def reopen(self, store: EventStore) -> EventStore:
        """Returns a new store object over the same data as ``store`` (durable stores only)."""
        raise NotImplementedError

    @pytest.fixture
    async def store(self) -> AsyncIterator[EventStore]:
        """Returns a started, empty store, closed after the test."""
        made = await self.make_store()
        await made.start()
        try:
            yield made
        finally:
            await made.close()

    async def test_a_started_store_answers_a_ping(self, store: EventStore) -> None:
        await asyncio.wait_for(store.ping(), 5.0)

    async def test_an_empty_store_has_nothing(self, store: EventStore) -> None:
        assert await store.head() == 0
        assert await store.read_all() == []
        assert await store.read_stream("s-1") == []
        assert await store.stream_version("s-1") == 0

    async def test_appended_events_are_read_back_with_their_envelope(
        self, store: EventStore
    ) -> None:
        new = NewEvent("test.Happened.v1", {"n": 1, "nested": {"a": [1, "x"]}}, {"k": "v"})
        result = await store.append([StreamAppend("s-1", 0, [new])])
        assert result.position == 1
        assert result.versions == {"s-1": 1}
        assert not result.replayed
        (env,) = await store.read_stream("s-1")
        assert (env.id, env.type, env.subject) == (new.id, new.type, "s-1")
        assert env.source == store.service
        assert (env.stream_version, env.position) == (1, 1)
        assert env.data == new.data
        assert env.metadata == new.metadata
        assert isinstance(env.time, datetime)
        assert env.time.tzinfo is not None
        assert result.envelopes == [env]

    async def test_positions_are_gapless_and_in_append_order(self, store: EventStore) -> None:
        await store.append([append("a", 0, 2)])
        await store.append([append("b", 0, 3)])
        await store.append([append("a", 2, 1)])
        log = await store.read_all()
        assert [e.position for e in log] == [1, 2, 3, 4, 5, 6]
        assert [(e.subject, e.stream_version) for e in log] == [
            ("a", 1),
            ("a", 2),
            ("b", 1),
            ("b", 2),
            ("b", 3),
            ("a", 3),
        ]
        assert await store.head() == 6
        assert await store.stream_version("a") == 3

    async def test_read_all_pages_after_a_position(self, store: EventStore) -> None:
        await store.append([append("a", 0, 10)])
        page = await store.read_all(after_position=3, limit=4)
        assert [e.position for e in page] == [4, 5, 6, 7]
        assert await store.read_all(after_position=10) == []

    async def test_read_stream_after_a_version(self, store: EventStore) -> None:
        await store.append([append("a", 0, 5)])
        assert [e.stream_version for e in await store.read_stream("a", 3)] == [4, 5]

    async def test_a_stale_expected_version_conflicts_and_writes_nothing(
        self, store: EventStore
    ) -> None:
        await store.append([append("a", 0, 2)])
        with pytest.raises(ConcurrencyError) as info:
            await store.append([append("a", 1, 1)])
        assert (info.value.stream_id, info.value.expected, info.value.actual) == ("a", 1, 2)
        with pytest.raises(ConcurrencyError):
            await store.append([append("a", 0, 1)])
        assert await store.head() == 2

    async def test_a_multi_stream_append_is_all_or_nothing(self, store: EventStore) -> None:
        await store.append([append("b", 0, 1)])
        with pytest.raises(ConcurrencyError):
            await store.append([append("a", 0, 2), append("b", 0, 1)])
        assert await store.read_stream("a") == []
        assert await store.head() == 1
        result = await store.append([append("a", 0, 2), append("b", 1, 1)])
        assert result.versions == {"a": 2, "b": 2}
        assert result.position == 4

    async def test_no_expected_version_appends_at_any_version(self, store: EventStore) -> None:
        await store.append([append("a", None, 1)])
        await store.append([append("a", None, 2)])
        assert await store.stream_version("a") == 3

    async def test_a_large_append_is_written_whole(self, store: EventStore) -> None:
        await store.append([append("big", 0, 1000)])
        assert await store.stream_version("big") == 1000
        assert len(await store.read_all(limit=5000)) == 1000

    async def test_concurrent_writers_to_one_stream_conflict_cleanly(
        self, store: EventStore
    ) -> None:
        async def writer() -> bool:
            try:
                await store.append([append("hot", 0, 1)])
            except ConcurrencyError:
                return False
            return True

        won = await asyncio.gather(*(writer() for _ in range(self.concurrency)))
        assert sum(won) == 1
        assert await store.head() == 1

    async def test_concurrent_writers_to_many_streams_all_commit_once(
        self, store: EventStore
    ) -> None:
        n = self.concurrency
        await asyncio.gather(*(store.append([append(f"s-{i}", 0, 2)]) for i in range(n)))
        log = await store.read_all(limit=10 * n)
        assert [e.position for e in log] == list(range(1, 2 * n + 1))
        assert {e.subject for e in log} == {f"s-{i}" for i in range(n)}
        for i in range(n):
            assert [e.stream_version for e in await store.read_stream(f"s-{i}")] == [1, 2]

    async def test_one_failing_writer_does_not_spoil_concurrent_ones(
        self, store: EventStore
    ) -> None:
        await store.append([append("taken", 0, 1)])
        outcomes = await asyncio.gather(
            store.append([append("fresh-1", 0, 1)]),
            store.append([append("taken", 0, 1)]),
            store.append([append("fresh-2", 0, 1)]),
            return_exceptions=True,
        )
        assert isinstance(outcomes[1], ConcurrencyError)
        assert await store.stream_version("fresh-1") == 1
        assert await store.stream_version("fresh-2") == 1
        assert await store.head() == 3

    async def test_an_idempotency_key_replays_the_first_result(self, store: EventStore) -> None:
        first = await store.append([append("a", 0, 2)], idempotency_key="k1", request_hash="h")
        again = await store.append([append("a", 2, 2)], idempotency_key="k1", request_hash="h")
        assert again.replayed
        assert (again.position, again.versions, again.request_hash) == (
            first.position,
            first.versions,
            "h",
        )
        assert await store.head() == 2
        recorded = await store.idempotent_result("k1")
        assert recorded is not None
        assert (recorded.position, recorded.request_hash) == (2, "h")
        assert await store.idempotent_result("other") is None

    async def test_concurrent_requests_with_one_key_append_once(self, store: EventStore) -> None:
        results = await asyncio.gather(
            *(
                store.append([append(f"k-{i}", 0, 1)], idempotency_key="same", request_hash="h")
                for i in range(5)
            ),
            return_exceptions=True,
        )
        assert all(not isinstance(r, BaseException) for r in results)
        assert await store.head() == 1

    async def test_a_conflicting_append_does_not_record_its_key(self, store: EventStore) -> None:
        await store.append([append("a", 0, 1)])
        with pytest.raises(ConcurrencyError):
            await store.append([append("a", 0, 1)], idempotency_key="k2", request_hash="h")
        assert await store.idempotent_result("k2") is None

    async def test_wait_for_wakes_on_a_new_commit(self, store: EventStore) -> None:
        assert not await store.wait_for(0, 0.05)

        async def later() -> None:
            await asyncio.sleep(0.05)
            await store.append([append("a", 0, 1)])

        task = asyncio.create_task(later())
        assert await store.wait_for(0, 5.0)
        await task
        assert await store.wait_for(0, 0.0)

    async def test_checkpoints_are_saved_and_listed(self, store: EventStore) -> None:
        assert await store.load_checkpoint("relay") == 0
        await store.save_checkpoint("relay", 5)
        await store.save_checkpoint("relay", 7)
        await store.save_checkpoint("other", 1)
        assert await store.load_checkpoint("relay") == 7
        assert await store.checkpoints() == {"relay": 7, "other": 1}

    async def test_a_checkpoint_moves_only_from_the_expected_position(
        self, store: EventStore
    ) -> None:
        assert not await store.save_checkpoint("relay", 5, expected=3)
        assert await store.checkpoints() == {}
        assert await store.save_checkpoint("relay", 5, expected=0)
        assert not await store.save_checkpoint("relay", 9, expected=0)
        assert not await store.save_checkpoint("relay", 2, expected=4)
        assert await store.save_checkpoint("relay", 8, expected=5)
        assert await store.load_checkpoint("relay") == 8
        assert await store.save_checkpoint("relay", 1)  # no expectation: always written
        assert await store.load_checkpoint("relay") == 1

    async def test_racing_checkpoint_movers_from_one_position_move_it_once(
        self, store: EventStore
    ) -> None:
        await store.save_checkpoint("relay", 4)
        moved = await asyncio.gather(
            *(store.save_checkpoint("relay", 10 + i, expected=4) for i in range(10))
        )
        assert moved.count(True) == 1
        assert await store.load_checkpoint("relay") == 10 + moved.index(True)

    async def test_a_reopened_store_keeps_everything(self, store: EventStore) -> None:
        if not self.durable:
            pytest.skip("this backend keeps nothing across restarts")
        await store.append([append("a", 0, 3)], idempotency_key="k", request_hash="h")
        await store.save_checkpoint("relay", 2)
        await store.close()
        again = await self.reopen(store)
        await again.start()
        try:
            assert [e.position for e in await again.read_all()] == [1, 2, 3]
            assert await again.stream_version("a") == 3
            assert await again.load_checkpoint("relay") == 2
            assert (await again.append([append("a", 0, 1)], idempotency_key="k")).replayed
            await again.append([append("a", 3, 1)])
            assert await again.head() == 4
        finally:
            await again.close()
