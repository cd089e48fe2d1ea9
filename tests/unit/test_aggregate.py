"""Event-sourced aggregates: record, apply, replay, versions, and the repository."""

from __future__ import annotations

import contextlib
from typing import ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bicameral import (
    Aggregate,
    ConcurrencyError,
    ConfigurationError,
    Event,
    MessageRegistry,
    Repository,
    RuleViolation,
)
from bicameral.eventstore.memory import MemoryEventStore


class Opened(Event, name="test.Opened"):
    owner: str


class Deposited(Event, name="test.Deposited"):
    amount: int


class Withdrawn(Event, name="test.Withdrawn"):
    amount: int


class Account(Aggregate):
    """A bank account that never goes below zero."""

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.owner = ""
        self.balance = 0
        self.history: list[int] = []

    def open(self, owner: str) -> None:
        if self.exists:
            raise RuleViolation("already open")
        self.record(Opened(owner=owner))

    def deposit(self, amount: int) -> None:
        self.record(Deposited(amount=amount))

    def withdraw(self, amount: int) -> None:
        if amount > self.balance:
            raise RuleViolation("insufficient funds")
        self.record(Withdrawn(amount=amount))

    def apply(self, event: Event) -> None:
        match event:
            case Opened(owner=owner):
                self.owner = owner
            case Deposited(amount=amount):
                self.balance += amount
                self.history.append(amount)
            case Withdrawn(amount=amount):
                self.balance -= amount
                self.history.append(-amount)


class Ledger(Aggregate):
    stream_prefix: ClassVar[str] = "ledgers/"


def state(account: Account) -> tuple[str, int, list[int], int]:
    return account.owner, account.balance, account.history, account.version


operations = st.lists(
    st.tuples(st.sampled_from(["deposit", "withdraw"]), st.integers(0, 1_000)), max_size=30
)


def run(account: Account, ops: list[tuple[str, int]]) -> None:
    account.open("ann")
    for op, amount in ops:
        attempt(account, op, amount)


def attempt(account: Account, op: str, amount: int) -> None:
    with contextlib.suppress(RuleViolation):
        getattr(account, op)(amount)


def registry() -> MessageRegistry:
    found = MessageRegistry()
    for cls in (Opened, Deposited, Withdrawn):
        found.register(cls)
    return found


@given(operations)
def test_replaying_recorded_events_onto_a_fresh_aggregate_gives_the_same_state(
    ops: list[tuple[str, int]],
) -> None:
    live = Account("a1")
    run(live, ops)
    events = list(live.pending)
    live.collect({})
    fresh = Account("a1")
    fresh.replay(events)
    assert state(fresh) == state(live)
    assert fresh.version == len(events)
    assert fresh.balance >= 0


@given(operations, st.integers(1, 5))
async def test_an_aggregate_saved_in_steps_loads_back_with_the_same_state_and_version(
    ops: list[tuple[str, int]], steps: int
) -> None:
    store = MemoryEventStore("bank")
    live = Account("a1")
    chunks = [ops[i::steps] for i in range(steps)]
    run(live, chunks[0])
    for chunk in [*chunks[1:], []]:
        append = live.collect({"correlation_id": "c"})
        if append is not None:
            await store.append([append])
        for op, amount in chunk:
            attempt(live, op, amount)
    loaded = await Repository(Account, store, registry()).get("a1")
    assert state(loaded) == state(live)
    assert loaded.version == await store.stream_version("account-a1")


def test_recording_applies_at_once_and_keeps_the_event_pending() -> None:
    account = Account("a1")
    assert not account.exists
    account.open("ann")
    assert account.exists
    assert account.owner == "ann"
    assert account.version == 0
    assert account.pending == (Opened(owner="ann"),)


def test_collect_makes_one_append_at_the_loaded_version_and_forgets_the_events() -> None:
    account = Account("a1")
    account.replay([Opened(owner="ann"), Deposited(amount=5)])
    account.deposit(1)
    account.deposit(2)
    append = account.collect({"correlation_id": "c"})
    assert append is not None
    assert append.stream_id == "account-a1"
    assert append.expected_version == 2
    assert [e.data for e in append.events] == [{"amount": 1}, {"amount": 2}]
    assert all(e.metadata == {"correlation_id": "c"} for e in append.events)
    assert account.version == 4
    assert account.pending == ()
    assert account.collect({}) is None


def test_the_stream_id_is_the_prefix_and_the_id() -> None:
    assert Account.stream_id("x") == "account-x"
    assert Ledger.stream_id("x") == "ledgers/x"


def test_apply_must_be_written_by_the_subclass() -> None:
    class Blank(Aggregate):
        pass

    with pytest.raises(NotImplementedError):
        Blank("b").record(Deposited(amount=1))


async def test_the_repository_gives_a_new_empty_aggregate_for_an_unknown_id() -> None:
    account = await Repository(Account, MemoryEventStore("bank"), registry()).get("nobody")
    assert not account.exists
    assert account.version == 0


async def test_the_repository_returns_the_same_object_for_an_id_and_collects_its_changes() -> None:
    repo = Repository(Account, MemoryEventStore("bank"), registry())
    first = await repo.get("a1")
    first.open("ann")
    assert await repo.get("a1") is first
    other = await repo.get("a2")
    other.open("bob")
    appends = repo.collect({})
    assert sorted(a.stream_id for a in appends) == ["account-a1", "account-a2"]
    assert repo.collect({}) == []


async def test_two_writers_from_the_same_version_conflict_and_the_loser_writes_nothing() -> None:
    store = MemoryEventStore("bank")
    seed = Repository(Account, store, registry())
    (await seed.get("a1")).open("ann")
    await store.append(seed.collect({}))
    one = await Repository(Account, store, registry()).get("a1")
    two = await Repository(Account, store, registry()).get("a1")
    one.deposit(1)
    two.deposit(2)
    first, second = one.collect({}), two.collect({})
    assert first is not None
    assert second is not None
    await store.append([first])
    with pytest.raises(ConcurrencyError) as info:
        await store.append([second])
    assert (info.value.stream_id, info.value.expected, info.value.actual) == ("account-a1", 1, 2)
    loaded = await Repository(Account, store, registry()).get("a1")
    assert (loaded.balance, loaded.version) == (1, 2)


async def test_recording_an_event_the_service_does_not_declare_is_refused_before_writing() -> None:
    store = MemoryEventStore("bank")
    known = MessageRegistry()
    known.register(Opened)
    repo = Repository(Account, store, known)
    (await repo.get("a1")).deposit(5)
    with pytest.raises(ConfigurationError, match="Deposited"):
        repo.collect({})
    assert await store.head() == 0
