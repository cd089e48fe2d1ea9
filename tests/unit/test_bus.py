"""The command bus and the query bus, on the memory backends."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client import REGISTRY

from bicameral import (
    Aggregate,
    CommandBus,
    ConcurrencyError,
    Event,
    IdempotencyKeyReusedError,
    MessageContext,
    NotCaughtUpError,
    NotFoundError,
    PermissionDeniedError,
    Principal,
    Projection,
    QueryBus,
    ReadModel,
    Repository,
    RuleViolation,
    Service,
    View,
)
from bicameral import Command as CommandBase
from bicameral import ConsistencyToken as Token
from bicameral import Query as QueryBase
from bicameral.envelope import NewEvent
from bicameral.eventstore.memory import MemoryEventStore
from bicameral.ports import StreamAppend
from bicameral.readstore.memory import MemoryReadStore
from bicameral.workers.feeds import LogFeed
from bicameral.workers.projector import Projector

ANN = Principal("ann", frozenset({"clerk"}))
ROBOT = Principal("service:bank", frozenset({"service"}), service="bank", on_behalf_of="ann")


class Opened(Event, name="bank.Opened"):
    id: str


class Deposited(Event, name="bank.Deposited"):
    id: str
    amount: int


class Open(CommandBase):
    id: str


class Deposit(CommandBase):
    id: str
    amount: int


class Transfer(CommandBase):
    source: str
    target: str
    amount: int


class Audit(CommandBase):
    id: str


class Balance(QueryBase):
    id: str


class Account(Aggregate):
    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.balance = 0

    def apply(self, event: Event) -> None:
        match event:
            case Deposited(amount=amount):
                self.balance += amount


@dataclass
class Bank:
    """A small service under test, with knobs to make other writers interfere."""

    store: MemoryEventStore = field(default_factory=lambda: MemoryEventStore("bank"))
    reads: MemoryReadStore = field(default_factory=MemoryReadStore)
    calls: list[str] = field(default_factory=list)
    interfere: dict[str, int] = field(default_factory=dict)
    service: Service = field(init=False)
    commands: CommandBus = field(init=False)
    queries: QueryBus = field(init=False)

    def __post_init__(self) -> None:
        svc = self.service = Service("bank")
        balances = Projection("balances", collections={"balances": []})

        @balances.on(Deposited)
        async def deposited(event: Deposited, view: View) -> None:
            doc = await view.get("balances", event.id) or {"balance": 0}
            view.put("balances", event.id, {"balance": doc["balance"] + event.amount})

        svc.projection(balances)
        svc.events(Opened)
        self.projection = balances

        @svc.command(key="id")
        def open_account(cmd: Open, account: Account) -> None:
            if account.exists:
                raise RuleViolation("open already")
            account.record(Opened(id=cmd.id))

        @svc.command(key="id", retries=2)
        async def deposit(cmd: Deposit, account: Account) -> None:
            self.calls.append(cmd.id)
            await self._other_writer(cmd.id)
            account.record(Deposited(id=cmd.id, amount=cmd.amount))

        @svc.command
        async def transfer(cmd: Transfer, accounts: Repository[Account]) -> None:
            self.calls.append(cmd.source)
            source = await accounts.get(cmd.source)
            target = await accounts.get(cmd.target)
            source.record(Deposited(id=cmd.source, amount=-cmd.amount))
            await self._other_writer(cmd.target)
            target.record(Deposited(id=cmd.target, amount=cmd.amount))
            if source.balance < 0:
                raise RuleViolation("insufficient funds")

        @svc.command(key="id", internal=True)
        def audit(cmd: Audit, account: Account, context: MessageContext) -> None:
            self.calls.append(context.principal.subject)
            account.record(Deposited(id=cmd.id, amount=0))

        @svc.query(reads=[balances])
        async def balance(query: Balance, reads: ReadModel) -> int:
            doc = await reads.get("balances", query.id)
            if doc is None:
                raise NotFoundError(query.id)
            return int(doc["balance"])

        # fresh loads: these tests count handler runs; the aggregate cache has its own tests
        self.commands = CommandBus(svc, self.store, cache_size=0)
        self.queries = QueryBus(svc, self.reads)

    async def _other_writer(self, id: str) -> None:
        if self.interfere.get(id, 0) > 0:
            self.interfere[id] -= 1
            other = NewEvent.of(Deposited(id=id, amount=1000))
            await self.store.append([StreamAppend(Account.stream_id(id), None, [other])])

    async def project(self) -> None:
        feed = LogFeed("bank", self.store)
        await Projector(self.projection, feed, self.reads).catch_up()

    async def events(self, id: str) -> list[dict[str, Any]]:
        return [e.data for e in await self.store.read_stream(Account.stream_id(id))]


def ctx(principal: Principal = ANN, **kw: str | None) -> MessageContext:
    return MessageContext(principal=principal, **kw)  # type: ignore[arg-type]


@pytest.fixture
def bank() -> Bank:
    return Bank()


async def test_a_handler_runs_and_its_events_are_appended(bank: Bank) -> None:
    result = await bank.commands.dispatch(Deposit(id="a", amount=5), ctx())
    assert result.position == 1
    assert result.versions == {"account-a": 1}
    assert result.token == Token({"bank": 1})
    assert await bank.events("a") == [{"id": "a", "amount": 5}]
    body = result.to_json()
    assert body["consistency_token"] == Token({"bank": 1}).encode()
    assert (body["stream_id"], body["version"]) == ("account-a", 1)


async def test_a_handler_that_writes_two_streams_appends_them_in_one_step(bank: Bank) -> None:
    await bank.commands.dispatch(Deposit(id="a", amount=10), ctx())
    result = await bank.commands.dispatch(Transfer(source="a", target="b", amount=4), ctx())
    assert result.versions == {"account-a": 2, "account-b": 1}
    assert result.position == 3
    assert "stream_id" not in result.to_json()


async def test_a_refused_command_writes_nothing(bank: Bank) -> None:
    with pytest.raises(RuleViolation):
        await bank.commands.dispatch(Transfer(source="a", target="b", amount=4), ctx())
    assert await bank.store.head() == 0


async def test_a_conflict_on_one_stream_writes_no_stream(bank: Bank) -> None:
    await bank.commands.dispatch(Deposit(id="a", amount=10), ctx())
    bank.interfere["b"] = 1
    with pytest.raises(ConcurrencyError):
        await bank.commands.dispatch(Transfer(source="a", target="b", amount=4), ctx())
    assert await bank.events("a") == [{"id": "a", "amount": 10}]
    assert await bank.events("b") == [{"id": "b", "amount": 1000}]


async def test_a_retryable_handler_runs_again_after_a_conflict(bank: Bank) -> None:
    bank.interfere["a"] = 2
    result = await bank.commands.dispatch(Deposit(id="a", amount=5), ctx())
    assert bank.calls == ["a", "a", "a"]
    assert result.versions == {"account-a": 3}
    assert await bank.events("a") == [
        {"id": "a", "amount": 1000},
        {"id": "a", "amount": 1000},
        {"id": "a", "amount": 5},
    ]


async def test_retries_stop_at_the_declared_bound_with_a_409_conflict(bank: Bank) -> None:
    bank.interfere["a"] = 3
    with pytest.raises(ConcurrencyError) as info:
        await bank.commands.dispatch(Deposit(id="a", amount=5), ctx())
    assert bank.calls == ["a", "a", "a"]
    assert info.value.status == 409
    assert await bank.events("a") == [{"id": "a", "amount": 1000}] * 3


async def test_a_handler_without_retries_runs_once_on_a_conflict(bank: Bank) -> None:
    bank.interfere["b"] = 5
    with pytest.raises(ConcurrencyError):
        await bank.commands.dispatch(Transfer(source="a", target="b", amount=0), ctx())
    assert bank.calls == ["a"]


async def test_the_same_idempotency_key_and_body_gives_the_first_result_and_runs_once(
    bank: Bank,
) -> None:
    first = await bank.commands.dispatch(Deposit(id="a", amount=5), ctx(idempotency_key="k1"))
    await bank.commands.dispatch(Deposit(id="b", amount=1), ctx())
    again = await bank.commands.dispatch(Deposit(id="a", amount=5), ctx(idempotency_key="k1"))
    assert bank.calls == ["a", "b"]
    assert (again.position, again.versions, again.token) == (
        first.position,
        first.versions,
        first.token,
    )
    assert again.replayed
    assert not first.replayed
    assert await bank.events("a") == [{"id": "a", "amount": 5}]


async def test_the_same_idempotency_key_with_another_body_is_refused(bank: Bank) -> None:
    await bank.commands.dispatch(Deposit(id="a", amount=5), ctx(idempotency_key="k1"))
    with pytest.raises(IdempotencyKeyReusedError) as info:
        await bank.commands.dispatch(Deposit(id="a", amount=6), ctx(idempotency_key="k1"))
    assert info.value.status == 422
    with pytest.raises(IdempotencyKeyReusedError):
        await bank.commands.dispatch(Open(id="a"), ctx(idempotency_key="k1"))
    assert await bank.store.head() == 1


async def test_concurrent_requests_with_one_idempotency_key_append_once(bank: Bank) -> None:
    results = await asyncio.gather(
        *(
            bank.commands.dispatch(Deposit(id="a", amount=5), ctx(idempotency_key="k1"))
            for _ in range(5)
        )
    )
    assert {r.position for r in results} == {1}
    assert await bank.events("a") == [{"id": "a", "amount": 5}]


async def test_internal_commands_are_refused_to_users(bank: Bank) -> None:
    for who in (ANN, Principal("")):
        with pytest.raises(PermissionDeniedError):
            await bank.commands.dispatch(Audit(id="a"), ctx(who))
    assert bank.calls == []
    assert await bank.store.head() == 0


async def test_internal_commands_are_accepted_from_a_service(bank: Bank) -> None:
    await bank.commands.dispatch(Audit(id="a"), ctx(ROBOT))
    assert bank.calls == ["service:bank"]


async def test_events_carry_principal_correlation_causation_and_trace(bank: Bank) -> None:
    trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    context = ctx(correlation_id="corr-1", traceparent=trace)
    await bank.commands.dispatch(Transfer(source="a", target="b", amount=0), context)
    stored = await bank.store.read_all()
    assert len(stored) == 2
    for env in stored:
        assert env.metadata == {
            "principal": {"subject": "ann", "roles": ["clerk"]},
            "correlation_id": "corr-1",
            "causation_id": context.message_id,
            "traceparent": trace,
        }


async def test_a_caused_command_records_its_cause(bank: Bank) -> None:
    cause = ctx(ROBOT, correlation_id="corr-1", causation_id="event-9")
    await bank.commands.dispatch(Audit(id="a"), cause)
    (env,) = await bank.store.read_all()
    assert env.metadata["causation_id"] == "event-9"
    assert env.metadata["correlation_id"] == "corr-1"
    assert env.principal == {
        "subject": "service:bank",
        "roles": ["service"],
        "service": "bank",
        "on_behalf_of": "ann",
    }


async def test_commands_are_counted_by_outcome(bank: Bank) -> None:
    def count(outcome: str) -> float:
        labels = {"service": "bank", "command": "Open", "outcome": outcome}
        return REGISTRY.get_sample_value("bicameral_commands_total", labels) or 0.0

    ok, refused = count("ok"), count("RuleViolation")
    await bank.commands.dispatch(Open(id="z"), ctx())
    with pytest.raises(RuleViolation):
        await bank.commands.dispatch(Open(id="z"), ctx())
    assert (count("ok"), count("RuleViolation")) == (ok + 1, refused + 1)


async def test_a_query_answers_from_the_read_model(bank: Bank) -> None:
    await bank.commands.dispatch(Deposit(id="a", amount=5), ctx())
    await bank.project()
    assert await bank.queries.ask(Balance(id="a"), ctx()) == 5


async def test_a_query_with_a_token_waits_for_the_projector(bank: Bank) -> None:
    result = await bank.commands.dispatch(Deposit(id="a", amount=5), ctx())
    asking = asyncio.create_task(bank.queries.ask(Balance(id="a"), ctx(), token=result.token))
    await asyncio.sleep(0.06)
    assert not asking.done()
    await bank.project()
    assert await asyncio.wait_for(asking, 5.0) == 5


async def test_a_query_with_a_token_beyond_the_log_is_not_caught_up(bank: Bank) -> None:
    with pytest.raises(NotCaughtUpError):
        await bank.queries.ask(Balance(id="a"), ctx(), token=Token({"bank": 1}), timeout=0.05)


async def test_a_token_naming_only_other_services_does_not_wait(bank: Bank) -> None:
    await bank.commands.dispatch(Deposit(id="a", amount=5), ctx())
    await bank.project()
    token = Token({"shipping": 99})
    assert await bank.queries.ask(Balance(id="a"), ctx(), token=token, timeout=0.0) == 5
