"""A full writer queue answers 503 problem+json with Retry-After at once, never a hang."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import httpx

from bicameral.eventstore.sqlite import SqliteEventStore
from bicameral.http.app import create_app
from bicameral.ports import EventStore
from bicameral.runtime.backends import BackendFactory, sqlite_path
from bicameral.runtime.node import Node
from bicameral.runtime.settings import Settings
from bicameral.security.keys import embedded_secret
from bicameral.security.tokens import issue_token
from shop.inventory.service import inventory


class SmallQueues(BackendFactory):
    """Makes SQLite event stores whose writer queue holds one job."""

    def event_store(self, service: str, url: str) -> EventStore:
        made: EventStore = self._once(
            "events", url, lambda: SqliteEventStore(service, sqlite_path(url), max_queue=1)
        )
        return made


async def test_a_full_sqlite_writer_queue_answers_503_with_retry_after(settings: Settings) -> None:
    node = Node(settings, [inventory], ["command-api"], factory=SmallQueues())
    app = create_app(node, manage_node=False)
    await node.start()
    token = issue_token(embedded_secret(Path(settings.data_dir)), subject="a", roles=["admin"])
    path = sqlite_path(settings.service("inventory").events_url)
    blocker = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://test",
            headers={"Authorization": f"Bearer {token}"},
        ) as client:

            async def register(sku: str) -> httpx.Response:
                body = {"sku": sku, "name": "Pen", "price_cents": 150}
                return await client.post("/inventory/commands/RegisterProduct", json=body)

            blocker.execute("BEGIN IMMEDIATE")  # the writer waits for this lock with its job
            sent = [asyncio.create_task(register(f"p{i}")) for i in range(6)]
            done, _ = await asyncio.wait(sent, timeout=30, return_when=asyncio.FIRST_COMPLETED)
            refused = next(iter(done)).result()
            assert refused.status_code == 503
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.headers["Retry-After"] == "1"
            assert refused.json()["type"] == "urn:bicameral:problem:overloaded"
            blocker.execute("COMMIT")
            answers = await asyncio.gather(*sent)
            statuses = sorted(a.status_code for a in answers)
            assert set(statuses) == {200, 503}
            assert statuses.count(200) <= 2  # one job in the writer's hands, one queued
            assert (await register("after")).status_code == 200
    finally:
        if blocker.in_transaction:
            blocker.execute("ROLLBACK")
        blocker.close()
        await node.stop()
