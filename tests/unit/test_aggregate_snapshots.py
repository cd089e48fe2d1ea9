"""Snapshots: a long stream loads from its latest snapshot plus the events after it, a changed
aggregate class ignores old snapshots, and a snapshot is never trusted for a decision the
append does not check."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bicameral import (
    Aggregate,
    Command,
    ConfigurationError,
    Event,
    MessageContext,
    Principal,
    RuleViolation,
    Service,
)
from bicameral.aggregate import Repository
from bicameral.bus import CommandBus
from bicameral.envelope import Envelope, NewEvent
from bicameral.eventstore.memory import MemoryEventStore
from bicameral.ports import Snapshot, StreamAppend


class Deposit(Command):
    id: str
    n: int


class Withdraw(Command):
    id: str
    n: int


class Deposited(Event, name="bank.Deposited"):
    n: int


class Withdrawn(Event, name="bank.Withdrawn"):
    n: int


class Account(Aggregate, snapshot_every=10):
    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.balance = 0
        self.history: list[int] = []

    def deposit(self, n: int) -> None:
        self.record(Deposited(n=n))

    def withdraw(self, n: int) -> None:
        if n > self.balance:
            raise RuleViolation(f"only {self.balance} left")
        self.record(Withdrawn(n=n))

    def apply(self, event: Event) -> None:
        match event:
            case Deposited(n=n):
                self.balance += n
                self.history.append(n)
            case Withdrawn(n=n):
                self.balance -= n
                self.history.append(-n)


class Ledger(Aggregate, snapshot_every=3):
    """State that is not plain JSON: a set."""

    stream_prefix = "account-"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.seen: set[int] = set()

    def apply(self, event: Event) -> None:
        if isinstance(event, Deposited):
            self.seen.add(event.n)


bank = Service("bank")
bank.events(Deposited, Withdrawn)


@bank.command(key="id")
def deposit(cmd: Deposit, account: Account) -> None:
    account.deposit(cmd.n)


@bank.command(key="id")
def withdraw(cmd: Withdraw, account: Account) -> None:
    account.withdraw(cmd.n)


CTX = MessageContext(principal=Principal("s", service="bank"))


class CountingStore(MemoryEventStore):
    """Notes each stream read's starting version and counts snapshot saves."""

    def __init__(self, service: str) -> None:
        super().__init__(service)
        self.reads: list[int] = []
        self.saved: list[int] = []

    async def read_stream(self, stream_id: str, after_version: int = 0) -> list[Envelope]:
        self.reads.append(after_version)
        return await super().read_stream(stream_id, after_version)

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        self.saved.append(snapshot.version)
        await super().save_snapshot(snapshot)


async def deposits(store: MemoryEventStore, stream: str, amounts: list[int]) -> None:
    """Appends Deposited events to ``stream`` behind the bus's back."""
    events = [NewEvent("bank.Deposited.v1", {"n": n}) for n in amounts]
    await store.append([StreamAppend(stream, None, events)])


def full(amounts: list[int]) -> Account:
    account = Account("a")
    account.replay(Deposited(n=n) for n in amounts)
    return account


async def test_a_long_load_takes_a_snapshot_and_the_next_load_reads_only_after_it() -> None:
    store = CountingStore("bank")
    await deposits(store, "account-a", [1] * 25)
    bus = CommandBus(bank, store, cache_size=0)
    await bus.dispatch(Deposit(id="a", n=5), CTX)
    assert store.reads == [0]
    assert store.saved == [25]
    await bus.dispatch(Deposit(id="a", n=5), CTX)
    assert store.reads == [0, 25]
    found = await store.load_snapshot("account-a", Account.snapshot_key())
    assert found is not None
    assert (found.version, found.state["balance"]) == (25, 25)
    assert store.saved == [25]  # one event after the snapshot: no new one yet


async def test_a_snapshot_plus_the_events_after_it_equals_a_full_replay() -> None:
    store = CountingStore("bank")
    await deposits(store, "account-a", list(range(12)))
    repo = Repository(Account, store, bank.registry, snapshots=store)
    await repo.get("a")
    await deposits(store, "account-a", [100, 200])
    again = await Repository(Account, store, bank.registry, snapshots=store).get("a")
    expected = full([*range(12), 100, 200])
    assert (again.version, again.balance, again.history) == (14, expected.balance, expected.history)
    assert store.reads[-1] == 12


@given(
    st.lists(st.integers(-50, 50), max_size=40),
    st.lists(st.integers(1, 40), max_size=4),
)
async def test_loads_with_snapshots_taken_anywhere_match_full_replays(
    amounts: list[int], cuts: list[int]
) -> None:
    store = MemoryEventStore("bank")
    written: list[int] = []
    for cut in [*sorted(cuts), len(amounts)]:
        chunk = amounts[len(written) : cut]
        if chunk:
            await deposits(store, "account-a", chunk)
            written += chunk
        loaded = await Repository(Account, store, bank.registry, snapshots=store).get("a")
        expected = full(written)
        assert (loaded.version, loaded.balance, loaded.history) == (
            expected.version,
            expected.balance,
            expected.history,
        )


async def test_a_snapshot_of_another_schema_is_ignored_and_a_new_one_taken() -> None:
    store = CountingStore("bank")
    await deposits(store, "account-a", [1] * 12)
    old = Account.snapshot_key().rsplit(":", 1)[0] + ":an-older-class"
    await store.save_snapshot(Snapshot("account-a", old, 12, {"balance": 999, "history": []}))
    account = await Repository(Account, store, bank.registry, snapshots=store).get("a")
    assert account.balance == 12
    assert store.reads == [0]
    assert await store.load_snapshot("account-a", old) is None
    assert await store.load_snapshot("account-a", Account.snapshot_key()) is not None


def _make(body: str) -> type[Aggregate]:
    namespace: dict[str, Any] = {"Aggregate": Aggregate}
    exec(f"class Tally(Aggregate, snapshot_every=5):\n{body}", namespace)
    return namespace["Tally"]  # type: ignore[no-any-return]


def test_the_snapshot_key_changes_with_the_class_code_or_its_declared_schema() -> None:
    one = _make("    def apply(self, event):\n        self.n = 1\n")
    same = _make("    def apply(self, event):\n        self.n = 1\n")
    other = _make("    def apply(self, event):\n        self.n = 2\n")
    assert one.snapshot_key() == same.snapshot_key()
    assert one.snapshot_key() != other.snapshot_key()
    pinned = _make("    snapshot_schema = 'v3'\n")
    assert pinned.snapshot_key().endswith("Tally:v3")
    assert Account.snapshot_key().startswith(f"{__name__}.Account:")


async def test_a_refusal_on_a_snapshot_is_decided_again_on_a_full_load() -> None:
    store = CountingStore("bank")
    await deposits(store, "account-a", [10] * 10)  # balance 100
    wrong = {"balance": 0, "history": []}
    await store.save_snapshot(Snapshot("account-a", Account.snapshot_key(), 10, wrong))
    bus = CommandBus(bank, store, cache_size=0)
    result = await bus.dispatch(Withdraw(id="a", n=50), CTX)
    assert result.versions == {"account-a": 11}
    assert store.reads == [10, 0]  # refused on the snapshot, then accepted on a full load


async def test_a_snapshot_ahead_of_its_stream_conflicts_and_runs_again_on_a_full_load() -> None:
    store = CountingStore("bank")
    await deposits(store, "account-a", [1] * 5)
    ahead = {"balance": 5, "history": [1] * 5}
    await store.save_snapshot(Snapshot("account-a", Account.snapshot_key(), 50, ahead))
    bus = CommandBus(bank, store, cache_size=0)
    result = await bus.dispatch(Deposit(id="a", n=1), CTX)
    assert result.versions == {"account-a": 6}
    assert store.reads == [50, 0]


async def test_state_that_is_not_plain_json_is_not_snapshotted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = CountingStore("bank")
    await deposits(store, "account-a", [1, 2, 3, 4])
    with caplog.at_level(logging.WARNING, "bicameral.aggregate"):
        ledger = await Repository(Ledger, store, bank.registry, snapshots=store).get("a")
    assert ledger.seen == {1, 2, 3, 4}
    assert store.saved == []
    assert "not plain JSON" in caplog.text


async def test_a_failed_snapshot_save_does_not_fail_the_command() -> None:
    class Failing(CountingStore):
        async def save_snapshot(self, snapshot: Snapshot) -> None:
            raise OSError("disk full")

    store = Failing("bank")
    await deposits(store, "account-a", [1] * 20)
    result = await CommandBus(bank, store, cache_size=0).dispatch(Deposit(id="a", n=1), CTX)
    assert result.versions == {"account-a": 21}


async def test_snapshots_can_be_turned_off_on_the_bus() -> None:
    store = CountingStore("bank")
    await deposits(store, "account-a", [1] * 20)
    bus = CommandBus(bank, store, cache_size=0, snapshots=False)
    await bus.dispatch(Deposit(id="a", n=1), CTX)
    await bus.dispatch(Deposit(id="a", n=1), CTX)
    assert store.reads == [0, 0]
    assert store.saved == []


def test_snapshot_every_must_be_a_whole_number_at_least_zero() -> None:
    with pytest.raises(ConfigurationError, match="snapshot_every"):

        class Bad(Aggregate, snapshot_every=-1):
            pass


async def test_a_stale_cached_copy_runs_again_from_the_snapshot_not_a_full_replay() -> None:
    store = CountingStore("bank")
    await deposits(store, "account-a", [1] * 30)
    bus = CommandBus(bank, store)
    await bus.dispatch(Deposit(id="a", n=1), CTX)  # full load, snapshot at 30, then cached
    await deposits(store, "account-a", [5])  # another process appends behind the cache
    result = await bus.dispatch(Deposit(id="a", n=1), CTX)
    assert result.versions == {"account-a": 33}
    assert store.reads == [0, 30]
