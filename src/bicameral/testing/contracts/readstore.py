"""The contract every ReadStore adapter passes: documents, indexes, atomic checkpoints,
leases, and parked sequences committed with the checkpoint."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bicameral.envelope import Envelope
from bicameral.parking import Failure, Park
from bicameral.ports import ReadStore

__all__ = ["ReadStoreContract"]

C = "proj_v1_items"
CP = "proj.v1:svc"
T0 = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def event(position: int, stream: str = "s-1", **data: Any) -> Envelope:
    """Returns a stored event of ``stream`` at ``position``."""
    return Envelope(
        id=str(uuid.uuid4()),
        type="svc.Thing.v1",
        source="svc",
        subject=stream,
        time=T0 + timedelta(seconds=position),
        stream_version=position,
        position=position,
        data={"n": position, "text": "ü €", **data},
        metadata={"correlation_id": "c-1", "principal": {"subject": "ann", "roles": ["x"]}},
    )


def failed(env: Envelope, error: str = "ValueError", attempts: int = 4) -> Park:
    """Returns the park of ``env`` opening a sequence of consumer CP."""
    failure = Failure(error, f"bad {env.position}", "Traceback ...\nValueError", attempts, T0)
    return Park("svc", CP, env.subject, env, failure)


def behind(env: Envelope) -> Park:
    """Returns the park of ``env`` joining its stream's open sequence of consumer CP."""
    return Park("svc", CP, env.subject, env)


class ReadStoreContract:
    """Subclass per backend and implement ``make_store`` (an empty, unstarted store)."""

    durable = False

    async def make_store(self) -> ReadStore:
        """Returns a new, empty, not yet started store."""
        raise NotImplementedError

    async def reopen(self, store: ReadStore) -> ReadStore:
        """Returns a new store object over the same data (durable stores only)."""
        raise NotImplementedError

    @pytest.fixture
    async def store(self) -> AsyncIterator[ReadStore]:
        """Returns a started store with collection ``C`` declared (indexed on ``owner``, ``n``)."""
        made = await self.make_store()
        await made.start()
        await made.declare(C, ["owner", "n"])
        try:
            yield made
        finally:
            await made.close()

    async def test_a_started_store_answers_a_ping(self, store: ReadStore) -> None:
        await asyncio.wait_for(store.ping(), 5.0)

    async def test_a_missing_document_is_none(self, store: ReadStore) -> None:
        assert await store.get(C, "nope") is None
        assert await store.all(C) == []
        assert await store.checkpoint(CP) == 0

    async def test_a_commit_writes_documents_and_moves_the_checkpoint(
        self, store: ReadStore
    ) -> None:
        doc: dict[str, Any] = {
            "owner": "ann",
            "n": 3,
            "ok": True,
            "none": None,
            "tags": ["a", "b"],
            "nested": {"x": 1.5, "y": "ü €"},
        }
        assert await store.commit(CP, 0, 10, {(C, "k1"): doc})
        assert await store.get(C, "k1") == doc
        assert await store.checkpoint(CP) == 10
        assert await store.checkpoints() == {CP: 10}

    async def test_get_many_returns_the_documents_found(self, store: ReadStore) -> None:
        await store.commit(CP, 0, 1, {(C, f"k{i}"): {"n": i} for i in range(700)})
        keys = [f"k{i}" for i in range(0, 700, 2)] + ["nope", "k1"]
        found = await store.get_many(C, keys)
        assert found == {k: {"n": int(k[1:])} for k in keys if k != "nope"}
        assert await store.get_many(C, []) == {}

    async def test_a_commit_at_a_stale_checkpoint_writes_nothing(self, store: ReadStore) -> None:
        assert await store.commit(CP, 0, 5, {(C, "k1"): {"n": 1}})
        assert not await store.commit(CP, 0, 6, {(C, "k1"): {"n": 2}, (C, "k2"): {"n": 2}})
        assert not await store.commit(CP, 4, 6, {(C, "k2"): {"n": 2}})
        assert await store.get(C, "k1") == {"n": 1}
        assert await store.get(C, "k2") is None
        assert await store.checkpoint(CP) == 5

    async def test_racing_commits_from_one_checkpoint_apply_once(self, store: ReadStore) -> None:
        outcomes = await asyncio.gather(
            *(store.commit(CP, 0, 1, {(C, f"k{i}"): {"n": i}}) for i in range(8))
        )
        assert sum(outcomes) == 1
        assert len(await store.all(C)) == 1

    async def test_none_deletes_a_document(self, store: ReadStore) -> None:
        await store.commit(CP, 0, 1, {(C, "k1"): {"n": 1}, (C, "k2"): {"n": 2}})
        await store.commit(CP, 1, 2, {(C, "k1"): None, (C, "absent"): None})
        assert await store.get(C, "k1") is None
        assert [k for k, _ in await store.all(C)] == ["k2"]

    async def test_find_uses_indexed_fields_and_follows_updates(self, store: ReadStore) -> None:
        await store.commit(
            CP,
            0,
            1,
            {
                (C, "b"): {"owner": "ann", "n": 1},
                (C, "a"): {"owner": "ann", "n": 2},
                (C, "c"): {"owner": "bob", "n": 1},
            },
        )
        assert await store.find(C, "owner", "ann") == [
            ("a", {"owner": "ann", "n": 2}),
            ("b", {"owner": "ann", "n": 1}),
        ]
        assert [k for k, _ in await store.find(C, "n", 1)] == ["b", "c"]
        await store.commit(CP, 1, 2, {(C, "a"): {"owner": "bob", "n": 2}})
        assert [k for k, _ in await store.find(C, "owner", "ann")] == ["b"]
        assert [k for k, _ in await store.find(C, "owner", "bob")] == ["a", "c"]
        assert await store.find(C, "owner", "nobody") == []

    async def test_all_is_ordered_by_key(self, store: ReadStore) -> None:
        keys = ["m", "a", "z", "b:1", "b/2", "with space", "ü"]
        await store.commit(CP, 0, 1, {(C, k): {"k": k} for k in keys})
        assert [k for k, _ in await store.all(C)] == sorted(keys)

    async def test_checkpoints_are_independent(self, store: ReadStore) -> None:
        await store.commit("p.v1:a", 0, 3, {})
        await store.commit("p.v1:b", 0, 9, {})
        assert await store.checkpoints() == {"p.v1:a": 3, "p.v1:b": 9}

    async def test_drop_removes_collections_and_checkpoints(self, store: ReadStore) -> None:
        await store.declare("other_v2_items", ["owner"])
        await store.commit(CP, 0, 1, {(C, "k"): {"n": 1}})
        await store.commit("other.v2:svc", 0, 1, {("other_v2_items", "k"): {"n": 2}})
        await store.drop([C], [CP])
        assert await store.get(C, "k") is None
        assert await store.checkpoint(CP) == 0
        assert await store.get("other_v2_items", "k") == {"n": 2}
        await store.declare(C, ["owner"])
        assert await store.commit(CP, 0, 1, {(C, "k"): {"owner": "x"}})
        assert [k for k, _ in await store.find(C, "owner", "x")] == ["k"]

    async def test_a_lease_has_one_owner_until_released_or_expired(self, store: ReadStore) -> None:
        assert await store.acquire_lease("g/p1", "w1", 30)
        assert await store.acquire_lease("g/p1", "w1", 30)
        assert not await store.acquire_lease("g/p1", "w2", 30)
        assert await store.leases("g/") == {"g/p1": "w1"}
        await store.release_lease("g/p1", "w2")
        assert await store.leases("g/") == {"g/p1": "w1"}
        await store.release_lease("g/p1", "w1")
        assert await store.leases("g/") == {}
        assert await store.acquire_lease("g/p1", "w2", 0.2)
        await asyncio.sleep(0.4)
        assert await store.leases("g/") == {}
        assert await store.acquire_lease("g/p1", "w1", 30)
        assert await store.leases("h/") == {}

    async def test_racing_lease_takers_get_one_owner(self, store: ReadStore) -> None:
        won = await asyncio.gather(*(store.acquire_lease("r", f"w{i}", 30) for i in range(6)))
        assert sum(won) == 1

    async def test_a_reopened_store_keeps_documents_and_checkpoints(self, store: ReadStore) -> None:
        if not self.durable:
            pytest.skip("this backend keeps nothing across restarts")
        await store.commit(CP, 0, 4, {(C, "k"): {"owner": "ann"}})
        await store.close()
        again = await self.reopen(store)
        await again.start()
        try:
            await again.declare(C, ["owner", "n"])
            assert await again.get(C, "k") == {"owner": "ann"}
            assert await again.checkpoint(CP) == 4
            assert [k for k, _ in await again.find(C, "owner", "ann")] == ["k"]
        finally:
            await again.close()

    async def test_a_commit_parks_events_with_the_checkpoint(self, store: ReadStore) -> None:
        e1, e2, e3 = event(1), event(2, "s-2"), event(3)
        parks = [failed(e1), behind(e3)]
        assert await store.commit(CP, 0, 3, {(C, "s-2"): {"n": 2}}, parks)
        assert await store.checkpoint(CP) == 3
        assert await store.get(C, "s-2") == {"n": 2}
        assert await store.parked_keys(CP) == {"s-1"}
        assert await store.parked_keys("other") == set()
        [seq] = await store.parked()
        assert seq.id == parks[0].sequence
        assert (seq.service, seq.consumer, seq.key) == ("svc", CP, "s-1")
        assert seq.events == (e1, e3)
        assert (seq.error, seq.message, seq.attempts) == ("ValueError", "bad 1", 4)
        assert seq.traceback == "Traceback ...\nValueError"
        assert seq.first_failed == seq.last_failed == T0
        assert seq.first_position == 1
        assert seq.event_type == "svc.Thing.v1"
        assert await store.parked_sequence(seq.id) == seq
        assert await store.parked_sequence("nope") is None
        assert e2 not in seq.events

    async def test_later_commits_park_behind_the_open_sequence(self, store: ReadStore) -> None:
        e1, e2, e3 = event(1), event(2), event(3, "s-2")
        assert await store.commit(CP, 0, 1, {}, [failed(e1)])
        assert await store.commit(CP, 1, 3, {}, [behind(e2), failed(e3)])
        found = {s.key: s for s in await store.parked()}
        assert found["s-1"].events == (e1, e2)
        assert found["s-2"].events == (e3,)
        assert await store.parked_keys(CP) == {"s-1", "s-2"}

    async def test_a_park_that_does_not_match_the_open_sequences_writes_nothing(
        self, store: ReadStore
    ) -> None:
        e1, e2 = event(1), event(2)
        assert not await store.commit(CP, 0, 1, {(C, "k"): {"n": 1}}, [behind(e1)])
        assert await store.checkpoint(CP) == 0
        assert await store.get(C, "k") is None
        assert await store.commit(CP, 0, 1, {}, [failed(e1)])
        assert not await store.commit(CP, 1, 2, {(C, "k"): {"n": 1}}, [failed(e2)])
        assert not await store.commit(CP, 1, 2, {}, [failed(e2, "X"), behind(event(3))])
        assert await store.checkpoint(CP) == 1
        assert await store.get(C, "k") is None
        [seq] = await store.parked()
        assert seq.events == (e1,)

    async def test_a_commit_at_a_stale_checkpoint_parks_nothing(self, store: ReadStore) -> None:
        assert await store.commit(CP, 0, 5, {})
        assert not await store.commit(CP, 0, 6, {}, [failed(event(6))])
        assert await store.parked() == []
        assert await store.parked_keys(CP) == set()

    async def test_unpark_applies_the_first_event_once(self, store: ReadStore) -> None:
        e1, e2 = event(1), event(2)
        first = failed(e1)
        await store.commit(CP, 0, 2, {}, [first, behind(e2)])
        assert not await store.unpark(first.sequence, e2.id, {(C, "s-1"): {"n": 2}})
        assert await store.unpark(first.sequence, e1.id, {(C, "s-1"): {"n": 1}})
        assert not await store.unpark(first.sequence, e1.id, {(C, "s-1"): {"n": 9}})
        assert await store.get(C, "s-1") == {"n": 1}
        [seq] = await store.parked()
        assert seq.events == (e2,)
        assert seq.id == first.sequence
        assert await store.unpark(first.sequence, e2.id, {(C, "s-1"): None})
        assert await store.get(C, "s-1") is None
        assert await store.parked() == []
        assert await store.parked_keys(CP) == set()
        assert await store.checkpoint(CP) == 2
        assert not await store.commit(CP, 2, 3, {}, [behind(event(3))])
        assert await store.commit(CP, 2, 3, {}, [failed(event(3))])

    async def test_unpark_with_a_failure_counts_the_attempts_and_writes_nothing_else(
        self, store: ReadStore
    ) -> None:
        e1 = event(1)
        first = failed(e1, attempts=4)
        await store.commit(CP, 0, 1, {}, [first])
        later = Failure("KeyError", "'x'", "tb 2", 1, T0 + timedelta(hours=1))
        assert await store.unpark(first.sequence, e1.id, {(C, "k"): {"n": 1}}, later)
        assert await store.get(C, "k") is None
        seq = await store.parked_sequence(first.sequence)
        assert seq is not None
        assert seq.events == (e1,)
        assert (seq.error, seq.message, seq.traceback) == ("KeyError", "'x'", "tb 2")
        assert seq.attempts == 5
        assert seq.first_failed == T0
        assert seq.last_failed == T0 + timedelta(hours=1)
        assert not await store.unpark("nope", e1.id, {}, later)

    async def test_racing_unparks_of_one_event_apply_once(self, store: ReadStore) -> None:
        e1 = event(1)
        first = failed(e1)
        await store.commit(CP, 0, 1, {}, [first])
        outcomes = await asyncio.gather(
            *(store.unpark(first.sequence, e1.id, {(C, f"k{i}"): {"n": i}}) for i in range(6))
        )
        assert sum(outcomes) == 1
        assert len(await store.all(C)) == 1
        assert await store.parked() == []

    async def test_a_park_joining_a_sequence_retried_meanwhile_writes_nothing(
        self, store: ReadStore
    ) -> None:
        e1, e2 = event(1), event(2)
        first = failed(e1)
        await store.commit(CP, 0, 1, {}, [first])
        joined, retried = await asyncio.gather(
            store.commit(CP, 1, 2, {}, [behind(e2)]),
            store.unpark(first.sequence, e1.id, {(C, "s-1"): {"n": 1}}),
        )
        assert retried
        left = await store.parked()
        if joined:
            assert [s.events for s in left] == [(e2,)]
            assert await store.checkpoint(CP) == 2
        else:
            assert left == []
            assert await store.checkpoint(CP) == 1

    async def test_skip_removes_the_sequence_and_records_who_when_and_why(
        self, store: ReadStore
    ) -> None:
        e1, e2 = event(1), event(2)
        first = failed(e1)
        await store.commit(CP, 0, 2, {}, [first, behind(e2)])
        before = datetime.now(UTC)
        record = await store.skip(first.sequence, "bad data, fixed by hand", "ann")
        assert record is not None
        assert (record.id, record.consumer, record.key) == (first.sequence, CP, "s-1")
        assert record.event_ids == (e1.id, e2.id)
        assert (record.first_position, record.last_position) == (1, 2)
        assert (record.reason, record.by) == ("bad data, fixed by hand", "ann")
        assert record.error == "ValueError"
        slack = timedelta(seconds=5)
        assert before - slack <= record.at <= datetime.now(UTC) + slack
        assert await store.parked() == []
        assert await store.parked_keys(CP) == set()
        assert await store.skipped() == [record]
        assert await store.skip(first.sequence, "again", "bob") is None
        assert await store.skipped() == [record]
        assert await store.commit(CP, 2, 3, {}, [failed(event(3))])

    async def test_a_reopened_store_keeps_parked_sequences_and_skips(
        self, store: ReadStore
    ) -> None:
        if not self.durable:
            pytest.skip("this backend keeps nothing across restarts")
        one, two = failed(event(1)), failed(event(2, "s-2"))
        await store.commit(CP, 0, 3, {}, [one, two, behind(event(3))])
        record = await store.skip(two.sequence, "why", "who")
        kept = await store.parked()
        await store.close()
        again = await self.reopen(store)
        await again.start()
        try:
            assert await again.parked() == kept
            assert await again.skipped() == [record]
            assert await again.parked_keys(CP) == {"s-1"}
        finally:
            await again.close()
