"""End to end: ``bicameral projections rebuild products`` beside the live read model, under load.

20,000 events are in the inventory's log. Its command-api, query-api and projector run as their
own processes (on the embedded backends, and on PostgreSQL + Redis + NATS). While a client sends
commands and queries over HTTP, with and without consistency tokens, the CLI rebuilds
``products`` as version 2. No query may fail or miss a product the client was shown before;
the switch must happen; version 2 must equal the fold of the log; ``drop-retired`` drops
version 1. The same again with the projector SIGKILLed halfway through the rebuild and
restarted: the rebuild resumes from its checkpoints.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from bicameral import NewEvent, StreamAppend, View
from bicameral.readstore.memory import MemoryReadStore
from bicameral.runtime.auth import embedded_key
from bicameral.runtime.node import Node
from bicameral.runtime.settings import Settings
from bicameral.runtime.status import rebuild_status
from bicameral.security.tokens import issue_token
from bicameral.versions import State, read_catalog
from shop.inventory.projections import products
from tests.e2e.cluster import ROOT, Cluster, free_port
from tests.e2e.layouts import Layout, create_stores, observer, write_settings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

APP = "tests.e2e.slow_app:services"
PARTITIONS = 4
LEASE_TTL = 2.0
PRODUCTS = 1_000
EVENTS = 20_000
REBUILD = [sys.executable, "-m", "bicameral.cli.main", "projections", "rebuild", "products"]
REBUILD += ["--service", "inventory"]


@pytest.fixture
def settings(layout: Layout, tmp_path: Path) -> Settings:
    return write_settings(
        tmp_path / "bicameral.toml", layout, APP, partitions=PARTITIONS, lease_ttl=LEASE_TTL
    )


async def write_log(node: Node) -> None:
    """Writes EVENTS events into the inventory's log: products registered, stock received."""
    events = node.runtime("inventory").events
    per_product = EVENTS // PRODUCTS
    for start in range(0, PRODUCTS, 50):
        appends = []
        for i in range(start, start + 50):
            sku = f"r{i}"
            new = [NewEvent("inventory.ProductRegistered.v1", product(sku))]
            new += [
                NewEvent("inventory.StockReceived.v1", {"sku": sku, "quantity": 1 + n % 5})
                for n in range(per_product - 1)
            ]
            appends.append(StreamAppend(f"product-{sku}", 0, new))
        await events.append(appends)
    assert await events.head() == EVENTS


def product(sku: str) -> dict[str, Any]:
    return {"sku": sku, "name": f"thing {sku}", "price_cents": 100}


@dataclass
class Shop:
    """The inventory's processes and a view of their backends."""

    cluster: Cluster
    node: Node
    commands: str
    queries: str
    headers: dict[str, str]

    def rebuild(self, *args: str) -> subprocess.Popen[bytes]:
        """Starts ``bicameral projections rebuild products`` with ``args``."""
        return subprocess.Popen(
            [*REBUILD, "--config", str(self.cluster.config), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.cluster.env,
            cwd=ROOT,
        )


@pytest.fixture
async def shop(settings: Settings, tmp_path: Path) -> AsyncIterator[Shop]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BICAMERAL_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    token = issue_token(embedded_key(settings), subject="e2e-admin", roles=["admin"])
    await create_stores(settings)
    node = await observer(settings)
    cluster = Cluster(tmp_path, tmp_path / "bicameral.toml", env)
    try:
        await write_log(node)
        commands = cluster.serve("commands", "inventory", "command-api", free_port())
        queries = cluster.serve("queries", "inventory", "query-api", free_port())
        cluster.serve("projector", "inventory", "projector")
        await asyncio.to_thread(cluster.wait_healthy, ["commands", "queries"])
        yield Shop(
            cluster,
            node,
            f"http://127.0.0.1:{commands.port}",
            f"http://127.0.0.1:{queries.port}",
            {"Authorization": f"Bearer {token}"},
        )
    finally:
        cluster.stop()
        await node.stop()
        print(cluster.logs())  # shown by pytest when the test failed


@dataclass
class Client:
    """Sends commands and queries until stopped; every product it was shown must stay found."""

    shop: Shop
    seen: set[str] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)
    queries: int = 0
    rng: random.Random = field(default_factory=lambda: random.Random(12))

    async def run(self, stop: asyncio.Event) -> None:
        async with (
            httpx.AsyncClient(**self.client(self.shop.commands)) as commands,
            httpx.AsyncClient(**self.client(self.shop.queries)) as queries,
        ):
            while not stop.is_set():
                try:
                    await self.one(commands, queries)
                except (AssertionError, httpx.HTTPError) as exc:
                    self.failures.append(repr(exc))

    def client(self, base_url: str) -> dict[str, Any]:
        """Client options: a query may wait 30 s for its consistency token (a loaded machine)."""
        return {"base_url": base_url, "headers": self.shop.headers, "timeout": 60.0}

    async def ask(self, http: httpx.AsyncClient, sku: str, token: str = "") -> dict[str, Any]:
        headers = {"X-Consistency-Token": token, "X-Consistency-Timeout": "30"} if token else {}
        answer = await http.get(
            "/inventory/queries/GetProduct", params={"sku": sku}, headers=headers
        )
        assert answer.status_code == 200, f"{sku}: {answer.status_code} {answer.text}"
        self.queries += 1
        found: dict[str, Any] = answer.json()
        return found

    async def one(self, commands: httpx.AsyncClient, queries: httpx.AsyncClient) -> None:
        roll = self.rng.random()
        if roll < 0.25:
            sku = f"new-{uuid.uuid4().hex[:8]}"
            sent = await commands.post("/inventory/commands/RegisterProduct", json=product(sku))
            assert sent.status_code == 200, sent.text
            await self.ask(queries, sku, sent.json()["consistency_token"])
            self.seen.add(sku)
        elif roll < 0.5:
            sku = f"r{self.rng.randrange(PRODUCTS)}"
            body = {"sku": sku, "quantity": 1}
            sent = await commands.post("/inventory/commands/ReceiveStock", json=body)
            assert sent.status_code == 200, sent.text
            await self.ask(queries, sku, sent.json()["consistency_token"])
        elif self.seen and roll < 0.75:
            await self.ask(queries, self.rng.choice(sorted(self.seen)))
        else:
            await self.ask(queries, f"r{self.rng.randrange(PRODUCTS)}")


async def fold(node: Node) -> dict[str, dict[str, Any]]:
    log = await node.runtime("inventory").events.read_all(0, 10**9)
    store = MemoryReadStore()
    view = View(products, store)
    await products.fold(log, view)
    assert await store.commit("fold", 0, len(log), view.changes)
    return dict(await store.all(products.table("products")))


async def wait_until(check: Any, what: str, shop: Shop, timeout: float = 120) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = await check()
        if found:
            return found
        assert asyncio.get_running_loop().time() < deadline, f"{what}:\n{shop.cluster.logs()}"
        await asyncio.sleep(0.05)


async def live_caught_up(shop: Shop) -> bool:
    rt = shop.node.runtime("inventory")
    status = await rebuild_status(rt, products, 1)
    return status.version.state == State.LIVE and status.progress.done >= EVENTS


async def finish(shop: Shop, client: Client, stop: asyncio.Event, load: asyncio.Task[None]) -> None:
    """Lets the load run on after the switch, stops it, and checks the outcome."""
    rt = shop.node.runtime("inventory")
    await asyncio.sleep(1.0)
    stop.set()
    await load
    assert not client.failures, client.failures[:5]
    assert client.queries > 50
    catalog = await read_catalog(rt.reads)
    assert catalog.live("products") == 2
    assert [v.state for v in catalog.versions("products")] == [State.RETIRED, State.LIVE]

    async def folded() -> bool:
        return dict(await rt.reads.all("products_v2_products")) == await fold(shop.node)

    await wait_until(folded, "version 2 never equalled the fold of the log", shop)
    shop.cluster.cli("projections", "drop-retired", "products", "--service", "inventory")
    assert await rt.reads.all("products_v1_products") == []
    assert [v.number for v in (await read_catalog(rt.reads)).versions("products")] == [2]


async def test_a_rebuild_under_load_switches_without_a_failed_or_missing_query(
    shop: Shop,
) -> None:
    await wait_until(lambda: live_caught_up(shop), "the live version never caught up", shop)
    client, stop = Client(shop), asyncio.Event()
    load = asyncio.create_task(client.run(stop))
    await asyncio.sleep(1.0)
    rebuilding = shop.rebuild("--wait")
    _, err = await asyncio.to_thread(rebuilding.communicate, timeout=300)
    assert rebuilding.returncode == 0, err.decode()
    assert "rebuilding products (inventory) as version 2" in err.decode()
    assert "products version 2 is live" in err.decode()
    await finish(shop, client, stop, load)


async def test_a_rebuild_resumes_after_the_projector_is_killed_halfway(shop: Shop) -> None:
    rt = shop.node.runtime("inventory")
    await wait_until(lambda: live_caught_up(shop), "the live version never caught up", shop)
    client, stop = Client(shop), asyncio.Event()
    load = asyncio.create_task(client.run(stop))
    await asyncio.sleep(1.0)
    started = shop.rebuild("--no-wait")
    _, err = await asyncio.to_thread(started.communicate, timeout=60)
    assert started.returncode == 0, err.decode()
    second = shop.rebuild("--no-wait")
    _, err = await asyncio.to_thread(second.communicate, timeout=60)
    assert "a rebuild of products is already in progress (version 2," in err.decode()

    async def halfway() -> Any:
        status = await rebuild_status(rt, products, 2)
        return status if status.progress.done > 0 else None

    before = await wait_until(halfway, "the rebuild never started", shop)
    shop.cluster.kill("projector")
    killed_at = await rebuild_status(rt, products, 2)
    assert killed_at.version.state == State.BUILDING, "the rebuild ended before the kill"
    assert killed_at.progress.done >= before.progress.done
    shop.cluster.restart("projector")

    async def switched() -> bool:
        return (await rebuild_status(rt, products, 2)).version.state == State.LIVE

    await wait_until(switched, "the rebuild never switched after the restart", shop)
    await finish(shop, client, stop, load)
