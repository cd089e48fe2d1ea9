"""Rebuilding the inventory's read model beside the live one, in-process on SQLite files.

A client keeps sending commands and queries (with and without consistency tokens) while
version 2 of ``products`` is built; no query fails or misses a product the live version had
shown it, the switch happens, the new version equals the fold of the log, and ``drop-retired``
drops the old one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bicameral import ConsistencyToken, MessageContext, Principal, Projection, View
from bicameral.readstore.memory import MemoryReadStore
from bicameral.runtime import rebuild
from bicameral.runtime.dlq import DeadLetters
from bicameral.runtime.node import ROLES, Node
from bicameral.runtime.settings import Settings
from bicameral.runtime.status import projection_status
from bicameral.service import Service
from bicameral.versions import State, drop_retired, read_catalog
from shop.app import services as shop_services
from shop.inventory.messages import GetProduct, ListProducts, ReceiveStock, RegisterProduct
from shop.inventory.projections import ProductView, products
from shop.inventory.service import inventory

CLERK = MessageContext(principal=Principal("clerk-1", frozenset({"staff"})))
PRODUCTS = 40


async def fill(node: Node, events: int) -> None:
    """Writes about ``events`` events: PRODUCTS products, then stock received for them."""
    bus = node.runtime("inventory").commands
    for i in range(PRODUCTS):
        await bus.dispatch(RegisterProduct(sku=f"p{i}", name=f"thing {i}", price_cents=5), CLERK)
    for n in range(events - PRODUCTS):
        await bus.dispatch(ReceiveStock(sku=f"p{n % PRODUCTS}", quantity=1 + n % 7), CLERK)


async def fold(node: Node) -> dict[str, dict[str, Any]]:
    """Returns the products read model folded from the whole log in memory."""
    log = await node.runtime("inventory").events.read_all(0, 10**9)
    store = MemoryReadStore()
    view = View(products, store)
    await products.fold(log, view)
    assert await store.commit("fold", 0, len(log), view.changes)
    return dict(await store.all(products.table("products")))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.load(environ={}, data_dir=tmp_path / "data", partitions=4)


@pytest.fixture
async def node(settings: Settings) -> AsyncIterator[Node]:
    running = Node(settings, [inventory], ROLES)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


class Client:
    """Sends commands and queries until stopped; remembers every product it was shown."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.seen: set[str] = set()
        self.queries = 0
        self.failures: list[BaseException] = []
        self.rng = random.Random(7)
        self.next_sku = PRODUCTS

    async def run(self, stop: asyncio.Event) -> None:
        rt = self.node.runtime("inventory")
        while not stop.is_set():
            try:
                await self.one(rt)
            except Exception as exc:  # every failure is a finding
                self.failures.append(exc)
            await asyncio.sleep(0)

    async def one(self, rt: Any) -> None:
        roll = self.rng.random()
        if roll < 0.2:
            sku = f"p{self.next_sku}"
            self.next_sku += 1
            command = RegisterProduct(sku=sku, name="new", price_cents=1)
            token = (await rt.commands.dispatch(command, CLERK)).token
            found = await rt.queries.ask(GetProduct(sku=sku), CLERK, token=token, timeout=10.0)
            assert found["sku"] == sku
            self.seen.add(sku)
        elif roll < 0.5:
            sku = f"p{self.rng.randrange(PRODUCTS)}"
            token = (await rt.commands.dispatch(ReceiveStock(sku=sku, quantity=1), CLERK)).token
            await rt.queries.ask(GetProduct(sku=sku), CLERK, token=token, timeout=10.0)
        else:
            listed = await rt.queries.ask(ListProducts(), CLERK)
            skus = {item["sku"] for item in listed["items"]}
            missing = self.seen - skus
            assert not missing, f"products seen before are missing: {sorted(missing)[:5]}"
            self.seen |= skus
        self.queries += 1


async def test_a_rebuild_beside_the_live_version_switches_without_a_failed_query(
    node: Node,
) -> None:
    rt = node.runtime("inventory")
    await fill(node, 1500)
    client = Client(node)
    stop = asyncio.Event()
    running = asyncio.create_task(client.run(stop))
    try:
        await asyncio.sleep(0.2)
        version, started = await rebuild.start(rt, products)
        assert (version.number, version.state, started) == (2, State.BUILDING, True)
        again, started_again = await rebuild.start(rt, products)
        assert (again.number, started_again) == (2, False)
        statuses: list[Any] = []
        final = await asyncio.wait_for(
            rebuild.watch(rt, products, version.number, statuses.append), 60
        )
        await asyncio.sleep(0.5)  # queries go on after the switch
    finally:
        stop.set()
        await running
    assert not client.failures, client.failures[:3]
    assert client.queries > 20
    assert final.version.state == State.LIVE
    assert statuses[0].progress.done <= statuses[-1].progress.done
    catalog = await read_catalog(rt.reads)
    assert catalog.live("products") == 2
    assert catalog.version("products", 1).state == State.RETIRED  # type: ignore[union-attr]
    await rt.queries.ask(
        ListProducts(), CLERK, token=ConsistencyToken({"inventory": await rt.events.head()})
    )
    assert dict(await rt.reads.all("products_v2_products")) == await fold(node)
    assert await drop_retired(rt.reads, products) == [1]
    assert await rt.reads.all("products_v1_products") == []
    assert not [c for c in await rt.reads.checkpoints() if c.startswith("products.v1")]


async def test_without_workers_the_rebuild_is_done_by_the_caller(settings: Settings) -> None:
    writer = Node(settings, [inventory], ["command-api", "query-api"])
    await writer.start()
    try:
        await fill(writer, 300)
        rt = writer.runtime("inventory")
        assert not await rebuild.workers_running(rt)
        version, _ = await rebuild.start(rt, products)
        seen: list[Any] = []
        final = await rebuild.build(rt, products, version.number, seen.append)
        assert final.version.state == State.LIVE
        assert (seen[-1].progress.done, seen[-1].progress.total) == (300, 300)
        assert dict(await rt.reads.all("products_v2_products")) == await fold(writer)
        answer = await rt.queries.ask(GetProduct(sku="p3"), CLERK)
        assert answer == (await fold(writer))["p3"]
    finally:
        await writer.stop()


class CountedProduct(ProductView):
    """Version 2's product document: the receipts of each product counted too."""

    receipts: int = 0


def bumped(version: int, *, poison: set[str] | None = None) -> Service:
    """Returns the inventory service whose products projection declares ``version``.

    Its documents count the receipts of each product; a receipt of a sku in ``poison`` raises.
    """
    new = Projection(
        "products",
        collections={"products": CountedProduct},
        indexes={"products": ["name"]},
        version=version,
        retries=0,
    )
    for type_name, handler in products.handlers.items():
        if type_name != "inventory.StockReceived.v1":
            new.on(handler.event, prefetch=handler.prefetch)(handler.fn)

    @new.on(products.handlers["inventory.StockReceived.v1"].event)
    async def received(event: Any, view: View) -> None:
        if poison and event.sku in poison:
            raise ValueError(f"a receipt of {event.sku} is poison")
        doc: CountedProduct | None = await view.get("products", event.sku)
        if doc is None:
            return
        doc.on_hand += event.quantity
        doc.available = doc.on_hand - doc.reserved
        doc.receipts += 1
        view.put("products", event.sku, doc)

    service = Service("inventory", registry=inventory.registry)
    service.commands.update(inventory.commands)
    service.queries.update(
        {
            name: dataclasses.replace(handler, reads=(new,))
            for name, handler in inventory.queries.items()
        }
    )
    service.projection(new)
    return service


async def test_deploying_a_new_version_builds_it_beside_the_old_then_switches(
    settings: Settings,
) -> None:
    first = Node(settings, [inventory], ROLES)
    await first.start()
    try:
        await fill(first, 400)
    finally:
        await first.stop()
    second = Node(settings, [bumped(2)], ROLES)
    await second.start()
    try:
        rt = second.runtime("inventory")
        catalog = await read_catalog(rt.reads)
        assert catalog.live("products") == 1
        assert [v.number for v in catalog.building("products")] == [2]
        answer = await rt.queries.ask(GetProduct(sku="p1"), CLERK)
        assert answer["receipts"] == 0  # version 1's document, read through version 2's model
        final = await asyncio.wait_for(
            rebuild.watch(rt, rt.service.projections[0], 2, lambda s: None), 60
        )
        assert final.version.state == State.LIVE
        docs = dict(await rt.reads.all("products_v2_products"))
        assert docs["p1"]["receipts"] == 9
    finally:
        await second.stop()


async def test_a_poison_event_parks_in_the_build_and_holds_the_switch_until_retried(
    settings: Settings,
) -> None:
    first = Node(settings, [inventory], ROLES)
    await first.start()
    try:
        await fill(first, 400)
    finally:
        await first.stop()
    poison = {"p7"}
    service = bumped(1, poison=poison)
    projection = service.projections[0]
    writer = Node(settings, [service], ["command-api", "query-api"])
    await writer.start()
    try:
        rt = writer.runtime("inventory")
        version, _ = await rebuild.start(rt, projection)
        held = await rebuild.build(rt, projection, version.number, lambda s: None)
        assert held.blocked
        assert held.version.state == State.BUILDING
        assert held.parked == 9  # p7's first receipt, and its later ones behind it
        assert (await read_catalog(rt.reads)).live("products") == 1
        answer = await rt.queries.ask(GetProduct(sku="p7"), CLERK)
        assert answer["receipts"] == 0  # the live version 1 keeps serving
        states = {row.name: (row.state, row.parked) for row in await projection_status(writer)}
        assert states["products.v1:inventory"] == ("live", 0)
        assert states["products.v2:inventory"][0].startswith("building 100%")
        assert states["products.v2:inventory"][1] == 9

        poison.clear()  # the fix is deployed; the parked events are retried through it
        retried = await DeadLetters(writer).retry_all("inventory", "products.v2:inventory")
        assert [r.applied for r in retried] == [9]
        final = await rebuild.build(rt, projection, version.number, lambda s: None)
        assert final.version.state == State.LIVE
        docs = dict(await rt.reads.all("products_v2_products"))
        assert docs["p7"]["receipts"] == 9
        assert {sku: {**d, "receipts": 0} for sku, d in docs.items()} == {
            sku: {**d, "receipts": 0} for sku, d in (await fold(writer)).items()
        }
    finally:
        await writer.stop()


def cli_run(settings: Settings, *args: str) -> Any:
    from typer.testing import CliRunner

    from bicameral.cli.main import app

    extra = ["--service", "inventory"] if args[1] in ("rebuild", "drop-retired") else []
    return CliRunner().invoke(app, [*args, *extra, "--data-dir", str(settings.data_dir)])


def filled(settings: Settings, events: int) -> None:
    async def write() -> None:
        writer = Node(settings, shop_services(), ["command-api"])
        await writer.start()
        try:
            await fill(writer, events)
        finally:
            await writer.stop()

    asyncio.run(write())


def test_the_cli_rebuilds_in_its_own_process_when_no_projector_runs(settings: Settings) -> None:
    filled(settings, 120)
    result = cli_run(settings, "projections", "rebuild", "products", "--wait")
    assert result.exit_code == 0, result.output
    assert "rebuilding products (inventory) as version 2 beside the live version 1" in result.stderr
    assert "products version 2 is live" in result.stderr
    assert "drop-retired products" in result.stderr
    status = cli_run(settings, "projections", "status")
    assert "products.v2:inventory" in status.stdout
    dropped = cli_run(settings, "projections", "drop-retired", "products")
    assert dropped.exit_code == 0
    assert dropped.stdout.strip() == "dropped products version(s) 1; version 2 is live"
    again = cli_run(settings, "projections", "rebuild", "products", "--wait", "--drop-old")
    assert again.exit_code == 0, again.output
    assert "products version 3 is live; dropped version(s) [2]" in again.stderr


def test_status_shows_a_build_in_progress_and_a_second_rebuild_attaches(
    settings: Settings,
) -> None:
    filled(settings, 120)
    started = cli_run(settings, "projections", "rebuild", "products", "--no-wait")
    assert started.exit_code == 0, started.output
    assert "a projector (bicameral up or serve) build it" in started.stderr
    status = cli_run(settings, "projections", "status")
    rows = [line.split(maxsplit=7) for line in status.stdout.splitlines()[1:]]
    whole = [r for r in rows if r[1] == "products.v2:inventory"]
    assert len(whole) == 1
    assert whole[0][2:5] == ["0", "120", "120"]
    assert whole[0][7].startswith("building 0%, ETA")
    again = cli_run(settings, "projections", "rebuild", "products", "--no-wait")
    assert "a rebuild of products is already in progress (version 2, 0%)" in again.stderr


def test_an_unknown_projection_is_one_line_naming_the_known_ones(settings: Settings) -> None:
    filled(settings, 10)
    result = cli_run(settings, "projections", "rebuild", "nope")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("bicameral: error: no projection 'nope'; known projections: ")
    assert "products (inventory)" in lines[0]
