"""Issue 2's crash test: SIGKILL the shop mid-stream, restart it, and find nothing lost or doubled.

Commands stream in concurrently while the server is killed with SIGKILL. After each restart on
the same data dir more commands arrive, and clients retry the requests whose outcome they never
learned, with the same Idempotency-Key. Then every read model must equal the fold of the event
log read straight from its SQLite file, every acknowledged command must have its event in the
log, and no event may be stored, projected or published twice. Each ReceiveStock carries a
quantity used by no other command, so the quantity names the command in the log.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from bicameral import ConsistencyToken, Envelope, View
from bicameral.eventstore.sqlite import SqliteEventStore
from bicameral.readstore.memory import MemoryReadStore
from bicameral.readstore.sqlite import SqliteReadStore
from bicameral.runtime.settings import Settings
from bicameral.transport.sqlite import SqliteTransport
from bicameral.workers.partitions import projection_position
from shop.inventory.projections import products
from tests.e2e.conftest import Server, client_options

SKUS = [f"crash-{i}" for i in range(6)]
WORKERS = 8
KILLS = 2
ACKED_BEFORE_KILL = 40
AFTER_LAST_RESTART = 40


@dataclass
class Sent:
    """One ReceiveStock the clients sent, and what they learned of it."""

    sku: str
    quantity: int
    key: str | None
    outcome: str = "unknown"  # "ok" | "refused" | "unknown"
    body: dict[str, Any] = field(default_factory=dict)


@dataclass
class Clients:
    """Concurrent clients sending ReceiveStock commands and remembering every outcome."""

    server: Server
    sent: list[Sent] = field(default_factory=list)
    quantities: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    rng: random.Random = field(default_factory=lambda: random.Random(2))
    token: ConsistencyToken = field(default_factory=ConsistencyToken)

    def acked(self) -> int:
        return sum(1 for s in self.sent if s.outcome == "ok")

    async def send(self, http: httpx.AsyncClient, command: Sent) -> None:
        headers = {"Idempotency-Key": command.key} if command.key else {}
        body = {"sku": command.sku, "quantity": command.quantity}
        response = await http.post("/inventory/commands/ReceiveStock", json=body, headers=headers)
        if response.status_code == 200:
            command.outcome, command.body = "ok", response.json()
            self.token = self.token.merge(
                ConsistencyToken.decode(command.body["consistency_token"])
            )
        else:
            assert response.status_code == 409, response.text
            command.outcome = "refused"

    async def worker(self, http: httpx.AsyncClient, budget: int | None) -> None:
        """Sends new commands until the server goes away (or ``budget`` are sent)."""
        for _ in itertools.count() if budget is None else range(budget):
            quantity = next(self.quantities)
            key = f"receive-{quantity}" if quantity % 2 else None
            command = Sent(self.rng.choice(SKUS), quantity, key)
            self.sent.append(command)
            try:
                await self.send(http, command)
            except httpx.TransportError:
                return

    async def stream_until_killed(self) -> None:
        async with httpx.AsyncClient(**client_options(self.server)) as http:
            workers = [asyncio.create_task(self.worker(http, None)) for _ in range(WORKERS)]
            target = self.acked() + ACKED_BEFORE_KILL
            while self.acked() < target:
                assert not all(w.done() for w in workers), self.server.output()
                await asyncio.sleep(0.005)
            self.server.kill()
            await asyncio.wait_for(asyncio.gather(*workers), 60)

    async def stream(self, count: int) -> None:
        async with httpx.AsyncClient(**client_options(self.server)) as http:
            per_worker = -(-count // WORKERS)
            await asyncio.gather(*(self.worker(http, per_worker) for _ in range(WORKERS)))

    async def retry_unknown(self) -> None:
        """Sends again, with the same key, each keyed command whose outcome was never learned."""
        async with httpx.AsyncClient(**client_options(self.server)) as http:
            for command in self.sent:
                if command.outcome == "unknown" and command.key:
                    await self.send(http, command)


async def register_products(server: Server) -> ConsistencyToken:
    token = ConsistencyToken()
    async with httpx.AsyncClient(**client_options(server)) as http:
        for sku in SKUS:
            body = {"sku": sku, "name": f"Product {sku}", "price_cents": 100}
            response = await http.post("/inventory/commands/RegisterProduct", json=body)
            assert response.status_code == 200, response.text
            token = token.merge(ConsistencyToken.decode(response.json()["consistency_token"]))
    return token


async def read_log(server: Server) -> list[Envelope]:
    store = SqliteEventStore("inventory", str(server.events_db()))
    await store.start()
    try:
        return await store.read_all(0, 1_000_000)
    finally:
        await store.close()


async def fold(log: list[Envelope]) -> dict[str, dict[str, Any]]:
    """Returns the products read model folded from ``log`` in memory, by sku."""
    store = MemoryReadStore()
    view = View(products, store)
    await products.fold(log, view)
    assert await store.commit("fold", 0, len(log), view.changes)
    return dict(await store.all(products.table("products")))


async def read_store_contents(server: Server) -> tuple[dict[str, dict[str, Any]], int]:
    store = SqliteReadStore(str(server.data_dir / "inventory" / "reads.db"))
    await store.start()
    try:
        docs = dict(await store.all(products.table("products")))
        partitions = Settings.load(environ={}).partitions
        return docs, await projection_position(store, products.checkpoint("inventory"), partitions)
    finally:
        await store.close()


async def published(server: Server, head: int) -> list[Envelope]:
    """Returns inventory's events on the SQLite transport once the relay has reached ``head``."""
    transport = SqliteTransport(str(server.data_dir / "transport.db"))
    await transport.start()
    try:
        for _ in range(500):
            if await transport.head("inventory") >= head:
                break
            await asyncio.sleep(0.02)
        subscription = await transport.subscribe("inventory", "crash-test", 0)
        return await subscription.fetch(1_000_000, 0.0)
    finally:
        await transport.close()


@pytest.mark.slow
async def test_a_killed_service_restarts_with_every_read_model_equal_to_the_fold_of_its_log(
    server: Server,
) -> None:
    clients = Clients(server)
    clients.token = await register_products(server)
    for _ in range(KILLS):
        await clients.stream_until_killed()
        await asyncio.to_thread(server.start)
    await clients.stream(AFTER_LAST_RESTART)
    await clients.retry_unknown()

    async with httpx.AsyncClient(**client_options(server)) as http:
        headers = {"X-Consistency-Token": clients.token.encode(), "X-Consistency-Timeout": "20"}
        listed = await http.get("/inventory/queries/ListProducts", headers=headers)
        assert listed.status_code == 200, listed.text
        answers = {
            sku: (await http.get("/inventory/queries/GetProduct", params={"sku": sku})).json()
            for sku in SKUS
        }

    log = await read_log(server)
    head = log[-1].position
    assert [e.position for e in log] == list(range(1, head + 1)), "positions have gaps"
    assert len({e.id for e in log}) == len(log)

    received = [e for e in log if e.type == "inventory.StockReceived.v1"]
    quantities = Counter(e.data["quantity"] for e in received)
    doubled = [q for q, n in quantities.items() if n > 1]
    assert not doubled, f"commands stored twice: {doubled}"

    by_position = {e.position: e for e in log}
    for command in clients.sent:
        if command.outcome == "ok":
            event = by_position[command.body["position"]]
            assert event.type == "inventory.StockReceived.v1"
            assert event.data == {"sku": command.sku, "quantity": command.quantity}
            assert event.subject == command.body["stream_id"] == f"product-{command.sku}"
            assert event.stream_version == command.body["version"]
        elif command.outcome == "refused":
            assert command.quantity not in quantities, "a refused command was stored"

    expected = await fold(log)
    assert set(expected) == set(SKUS)
    for sku in SKUS:
        on_hand = sum(e.data["quantity"] for e in received if e.data["sku"] == sku)
        assert expected[sku]["on_hand"] == on_hand
    assert {item["sku"]: item for item in listed.json()["items"]} == expected
    assert answers == expected

    server.stop()
    stored, checkpoint = await read_store_contents(server)
    assert checkpoint == head
    assert stored == expected

    relayed = await published(server, head)
    assert [(e.position, e.id) for e in relayed] == [(e.position, e.id) for e in log]

    outcomes = Counter(c.outcome for c in clients.sent)
    assert outcomes["ok"] >= KILLS * ACKED_BEFORE_KILL + AFTER_LAST_RESTART // 2
