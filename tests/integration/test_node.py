"""A Node running the inventory service with every role on SQLite files in a temporary folder."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bicameral import ConsistencyToken, MessageContext, NotCaughtUpError, Principal
from bicameral.cli.main import app as cli
from bicameral.runtime.node import ROLES, Node
from bicameral.runtime.settings import Settings
from bicameral.runtime.status import command_side_status, projection_status
from bicameral.transport.sqlite import SqliteTransport
from shop.inventory.messages import GetProduct, ListProducts, ReceiveStock, RegisterProduct
from shop.inventory.service import inventory

CLERK = MessageContext(principal=Principal("clerk-1", frozenset({"staff"})))


@pytest.fixture
async def node(settings: Settings) -> AsyncIterator[Node]:
    running = Node(settings, [inventory], ROLES)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


async def register(node: Node, sku: str, name: str = "Thing", price: int = 100) -> ConsistencyToken:
    bus = node.runtime("inventory").commands
    return (await bus.dispatch(RegisterProduct(sku=sku, name=name, price_cents=price), CLERK)).token


async def receive(node: Node, sku: str, quantity: int) -> ConsistencyToken:
    bus = node.runtime("inventory").commands
    return (await bus.dispatch(ReceiveStock(sku=sku, quantity=quantity), CLERK)).token


async def test_a_query_with_the_commands_token_sees_its_effect(node: Node) -> None:
    await register(node, "A1", "Apple", 120)
    token = await receive(node, "A1", 7)
    assert token == ConsistencyToken({"inventory": 2})
    answer = await node.runtime("inventory").queries.ask(
        GetProduct(sku="A1"), CLERK, token=token, timeout=5.0
    )
    assert answer == {
        "sku": "A1",
        "name": "Apple",
        "price_cents": 120,
        "on_hand": 7,
        "reserved": 0,
        "available": 7,
    }


async def test_the_files_live_under_the_data_dir(node: Node, settings: Settings) -> None:
    await register(node, "A1")
    folder = Path(settings.data_dir)
    assert (folder / "inventory" / "events.db").is_file()
    assert (folder / "inventory" / "reads.db").is_file()
    assert (folder / "transport.db").is_file()


async def test_a_token_beyond_the_log_is_not_caught_up_after_the_timeout(node: Node) -> None:
    await register(node, "A1")
    beyond = ConsistencyToken({"inventory": 99})
    with pytest.raises(NotCaughtUpError):
        await node.runtime("inventory").queries.ask(
            ListProducts(), CLERK, token=beyond, timeout=0.2
        )


async def wait_until(check: object, timeout: float = 5.0) -> None:
    """Polls the async ``check`` until it returns True."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_the_relay_publishes_the_log_to_the_sqlite_transport(
    node: Node, settings: Settings
) -> None:
    await register(node, "A1")
    await register(node, "B2")
    await receive(node, "A1", 3)
    rt = node.runtime("inventory")

    async def published() -> bool:
        return await rt.transport.head("inventory") == 3

    await wait_until(published)
    other = SqliteTransport(str(Path(settings.data_dir) / "transport.db"))
    await other.start()
    try:
        subscription = await other.subscribe("inventory", "test.reader", 0)
        delivered = await subscription.fetch(10, 1.0)
    finally:
        await other.close()
    stored = await rt.events.read_all()
    assert [(e.id, e.position, e.type, e.subject, e.data) for e in delivered] == [
        (e.id, e.position, e.type, e.subject, e.data) for e in stored
    ]
    assert all(e.principal["subject"] == "clerk-1" for e in delivered)
    await wait_until(lambda: _relay_at(node, 3))


async def _relay_at(node: Node, position: int) -> bool:
    relay = next(r for r in await command_side_status(node) if r.name == "relay")
    return relay.position == position and relay.lag == 0


async def test_projection_status_counts_the_lag_until_the_projector_runs(
    settings: Settings,
) -> None:
    writer = Node(settings, [inventory], ["command-api", "query-api"])
    await writer.start()
    try:
        for sku in ("A1", "B2", "C3"):
            await register(writer, sku)
        row, *partitions = await projection_status(writer)
        assert [p.name for p in partitions] == [
            f"products.v1:inventory#p{i}" for i in range(settings.partitions)
        ]
        assert all((p.position, p.head, p.lag) == (0, 3, 3) for p in partitions)
        assert (row.service, row.name, row.source) == (
            "inventory",
            "products.v1:inventory",
            "inventory",
        )
        assert (row.position, row.head, row.lag) == (0, 3, 3)
        assert row.lag_seconds >= 0
    finally:
        await writer.stop()

    assert await asyncio.to_thread(_cli_status, settings) == [
        "inventory",
        "products.v1:inventory",
        "0",
        "3",
        "3",
    ]

    full = Node(settings, [inventory], ROLES)
    await full.start()
    try:
        await full.runtime("inventory").queries.ask(
            ListProducts(), CLERK, token=ConsistencyToken({"inventory": 3}), timeout=5.0
        )
        for row in await projection_status(full):
            assert (row.position, row.head, row.lag, row.lag_seconds) == (3, 3, 0, 0.0)
    finally:
        await full.stop()

    assert await asyncio.to_thread(_cli_status, settings) == [
        "inventory",
        "products.v1:inventory",
        "3",
        "3",
        "0",
    ]


def _cli_status(settings: Settings) -> list[str]:
    result = CliRunner().invoke(
        cli,
        [
            "projections",
            "status",
            "--partitions",
            "--data-dir",
            str(settings.data_dir),
            "--app",
            "shop.inventory.service:inventory",
        ],
    )
    assert result.exit_code == 0, result.output
    header, row, *partitions = result.output.strip().splitlines()
    assert header.split()[4:7] == ["lag_events", "lag_seconds", "parked"]
    assert len(partitions) == Settings.load(environ={}).partitions
    return row.split()[:5]


async def test_a_restarted_node_resumes_without_applying_an_event_twice(
    settings: Settings,
) -> None:
    for round in range(3):
        node = Node(settings, [inventory], ROLES)
        await node.start()
        try:
            if round == 0:
                await register(node, "A1")
            token = await receive(node, "A1", 5)
            answer = await node.runtime("inventory").queries.ask(
                GetProduct(sku="A1"), CLERK, token=token, timeout=5.0
            )
        finally:
            await node.stop()
        assert answer["on_hand"] == 5 * (round + 1)
