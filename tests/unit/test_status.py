"""Status of partitioned projections and the relay; consistency waits across partitions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bicameral import ConsistencyToken, MessageContext, NotCaughtUpError, Principal
from bicameral.runtime.node import Node
from bicameral.runtime.settings import Settings
from bicameral.runtime.status import command_side_status, projection_status
from bicameral.workers.partitions import partition_of
from bicameral.workers.relay import Relay
from shop.inventory.messages import GetProduct, RegisterProduct
from shop.inventory.service import inventory
from tests.parking_app import BROKEN_ENV, Deposit, books, services

PARTITIONS = 4
CLERK = MessageContext(principal=Principal("clerk-1", frozenset({"staff"})))


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    settings = Settings.load(
        environ={},
        events_url="memory://",
        reads_url="memory://",
        transport_url="memory://",
        partitions=PARTITIONS,
    )
    node = Node(settings, [inventory], roles=())
    for backend in node.factory.started():
        await backend.start()
    yield node
    await node.stop()


async def register(node: Node, count: int) -> ConsistencyToken:
    """Registers ``count`` products; returns the last command's consistency token."""
    token = ConsistencyToken()
    for i in range(count):
        result = await node.runtime("inventory").commands.dispatch(
            RegisterProduct(sku=f"sku-{i}", name=f"thing {i}", price_cents=100), CLERK
        )
        token = result.token
    return token


async def test_status_reports_each_projection_and_partition_with_its_lag_and_owner(
    node: Node,
) -> None:
    rt = node.runtime("inventory")
    await register(node, 6)
    rows = {row.name: row for row in await projection_status(node)}
    base = "products.v1:inventory"
    assert set(rows) == {base} | {f"{base}#p{i}" for i in range(PARTITIONS)}
    assert all(row.head == 6 and row.lag == 6 and row.lag_seconds >= 0 for row in rows.values())
    assert all(row.owner == "" for row in rows.values())

    group = rt.projector_group()
    await group.catch_up()
    rows = {row.name: row for row in await projection_status(node)}
    assert (rows[base].position, rows[base].lag) == (6, 0)
    for i in range(PARTITIONS):
        assert rows[f"{base}#p{i}"].position == 6
        assert rows[f"{base}#p{i}"].owner == group.worker


async def test_status_reports_the_relay_checkpoint_and_lag(node: Node) -> None:
    await register(node, 3)
    rows = {row.name: row for row in await command_side_status(node)}
    relay = rows["relay"]
    assert (relay.position, relay.head, relay.lag) == (0, 3, 3)


async def test_a_consistency_token_waits_for_every_partition(node: Node) -> None:
    rt = node.runtime("inventory")
    token = await register(node, 5)
    group = rt.projector_group()
    await group.prepare()
    await group.heartbeat()
    lane = next(iter(group.lanes.values()))
    for slot in lane[:-1]:
        await slot.projector.catch_up()
    with pytest.raises(NotCaughtUpError):
        await rt.queries.ask(GetProduct(sku="sku-4"), CLERK, token=token, timeout=0.05)
    await lane[-1].projector.catch_up()
    answer = await rt.queries.ask(GetProduct(sku="sku-4"), CLERK, token=token)
    assert answer["sku"] == "sku-4"


async def test_by_default_a_partitioned_projection_is_one_row_owned_by_its_projectors(
    node: Node,
) -> None:
    await register(node, 2)
    group = node.runtime("inventory").projector_group()
    await group.catch_up()
    rows = await projection_status(node, partitions=False)
    assert [(row.name, row.position, row.lag, row.owner) for row in rows] == [
        ("products.v1:inventory", 2, 0, group.worker)
    ]


async def test_status_names_the_copy_holding_the_relay_and_each_reaction_runner(
    node: Node,
) -> None:
    rt = node.runtime("inventory")
    rows = {row.name: row for row in await command_side_status(node)}
    assert (rows["relay"].owner, rows["reactions:orders"].owner) == ("", "")
    assert await rt.reads.acquire_lease(rt.relay_lease, "host:1:relay", 10.0)
    assert await rt.reads.acquire_lease(rt.reactions_lease("orders"), "host:2:reactions", 10.0)
    rows = {row.name: row for row in await command_side_status(node)}
    assert rows["relay"].owner == "host:1:relay"
    assert rows["reactions:orders"].owner == "host:2:reactions"


async def test_status_counts_parked_events_per_consumer_and_partition(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flag = tmp_path / "broken"
    flag.write_text("account-bad")
    monkeypatch.setenv(BROKEN_ENV, str(flag))
    settings = Settings.load(
        environ={},
        events_url="memory://",
        reads_url="memory://",
        transport_url="memory://",
        partitions=PARTITIONS,
    )
    node = Node(settings, services(), roles=())
    admin = MessageContext(principal=Principal("ops", frozenset({"admin"})))
    try:
        bank, ledger = node.runtime("bank"), node.runtime("ledger")
        for account in ("bad", "ok", "bad"):
            await bank.commands.dispatch(Deposit(account=account, cents=1), admin)
        await Relay(bank.events, bank.transport).step(timeout=0)
        group = ledger.projector_group()
        for slot in group.slots:
            slot.projector.retry_delay = 0
        await group.catch_up()
        rows = {row.name: row for row in await projection_status(node)}
        base = books.checkpoint("bank")
        assert rows[base].parked == 2
        bad = partition_of("account-bad", PARTITIONS)
        for i in range(PARTITIONS):
            assert rows[f"{base}#p{i}"].parked == (2 if i == bad else 0)
    finally:
        await node.stop()
