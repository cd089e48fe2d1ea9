"""Workers report to their meters; a Node names them per consumer and /metrics exports them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bicameral import Envelope, MessageContext, Principal, Projection, Projector, View
from bicameral.envelope import NewEvent
from bicameral.eventstore.memory import MemoryEventStore
from bicameral.http.operations import create_operations_app
from bicameral.ports import StreamAppend
from bicameral.readstore.memory import MemoryReadStore
from bicameral.runtime.node import Node
from bicameral.runtime.settings import Settings
from bicameral.security.keys import embedded_secret
from bicameral.security.tokens import issue_token
from bicameral.transport.memory import MemoryTransport
from bicameral.workers.exclusive import Exclusive
from bicameral.workers.feeds import LogFeed
from bicameral.workers.meters import CONSUMERS, ConsumerMeters
from bicameral.workers.relay import Relay
from shop.inventory.messages import RegisterProduct
from shop.inventory.service import inventory
from tests.unit.tally import Added

CLERK = MessageContext(principal=Principal("clerk-1", frozenset({"staff"})))

broken = Projection("broken", collections={"rows": []})


@broken.on(Added)
async def explode(event: Added, view: View, env: Envelope) -> None:
    raise ValueError("cannot fold this")


async def added(store: MemoryEventStore, count: int) -> None:
    for i in range(count):
        event = NewEvent.of(Added(key=f"k{i}", n=i))
        await store.append([StreamAppend(f"tally-{i}", None, [event])])


async def test_a_projector_meters_its_position_and_each_failed_try_of_a_poison_event() -> None:
    events = MemoryEventStore("tally")
    await added(events, 3)
    projector = Projector(broken, LogFeed("tally", events), MemoryReadStore(), retry_delay=0)
    await projector.prepare()
    assert await projector.step(timeout=0.0) == 3  # each event parked
    meter = projector.meter
    assert meter.active
    tries = 3 * (broken.retries + 1)
    assert (meter.position, meter.lag_events, meter.errors["poison"]) == (3, 0, tries)
    assert meter.errors["transient"] == 0
    assert meter.lag_seconds() == 0


async def test_a_scrape_counts_the_parked_events_of_each_consumer() -> None:
    events, reads = MemoryEventStore("tally"), MemoryReadStore()
    await added(events, 3)
    projector = Projector(broken, LogFeed("tally", events), reads, service="tally", retry_delay=0)
    meters = ConsumerMeters()
    mine = projector.consumer
    projector.meter = meters.meter(
        "tally", mine, "0", parked=(reads.parked, lambda s: s.consumer == mine)
    )
    other = meters.meter("tally", "other", parked=(reads.parked, lambda s: s.consumer == "x"))
    other.at(0)
    await projector.prepare()
    assert await projector.step(timeout=0.0) == 3
    await meters.refresh()
    assert (projector.meter.parked_events, other.parked_events) == (3, 0)
    await reads.skip((await reads.parked())[0].id, reason="fixed by hand", by="ops")
    await meters.refresh()
    assert projector.meter.parked_events == 2  # a skip, by any process, shows at the next scrape


async def test_a_relay_meters_what_it_published_and_a_standby_exports_nothing() -> None:
    events, reads = MemoryEventStore("tally"), MemoryReadStore()
    await added(events, 4)
    working, standby = Relay(events, MemoryTransport()), Relay(events, MemoryTransport())
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(Exclusive(relay, reads, "relay/tally", owner, 5.0).run(stop))
        for relay, owner in ((working, "a"), (standby, "b"))
    ]
    for _ in range(200):
        if working.meter.position == 4:
            break
        await asyncio.sleep(0.01)
    assert (working.meter.position, working.meter.lag_events) == (4, 0)
    assert (working.meter.active, standby.meter.active) == (True, False)
    stop.set()
    await asyncio.gather(*tasks)
    assert not working.meter.active  # gave the lease up


def memory_settings(tmp_path: Path, **overrides: object) -> Settings:
    return Settings.load(
        environ={},
        data_dir=tmp_path,
        events_url="memory://",
        reads_url="memory://",
        transport_url="memory://",
        **overrides,
    )


@pytest.fixture
async def projector_node(tmp_path: Path) -> AsyncIterator[Node]:
    CONSUMERS.forget()
    node = Node(memory_settings(tmp_path, partitions=3), [inventory], ["projector", "relay"])
    for backend in node.factory.started():
        await backend.start()
    for i in range(5):
        await node.runtime("inventory").commands.dispatch(
            RegisterProduct(sku=f"m{i}", name="Mug", price_cents=100), CLERK
        )
    await node.start()
    yield node
    await node.stop()
    CONSUMERS.forget()


async def scrape(app: object, headers: dict[str, str]) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://w") as client:
        return await client.get("/metrics", headers=headers)


def admin(tmp_path: Path, roles: tuple[str, ...] = ("admin",)) -> dict[str, str]:
    token = issue_token(embedded_secret(tmp_path), subject="prometheus", roles=roles)
    return {"Authorization": f"Bearer {token}"}


async def test_a_worker_process_exports_position_and_lag_of_every_consumer(
    projector_node: Node, tmp_path: Path
) -> None:
    app = create_operations_app(projector_node, manage_node=False)
    samples: dict[tuple[str, str, str], float] = {}
    for _ in range(300):
        response = await scrape(app, admin(tmp_path))
        assert response.status_code == 200
        samples = {
            (s.name, s.labels["consumer"], s.labels["partition"]): s.value
            for family in text_string_to_metric_families(response.text)
            for s in family.samples
            if s.name.startswith("bicameral_consumer_") and s.labels["service"] == "inventory"
        }
        if samples.get(("bicameral_consumer_position", "relay", "")) == 5 and all(
            samples.get(("bicameral_consumer_position", "products.v1:inventory", str(p))) == 5
            for p in range(3)
        ):
            break
        await asyncio.sleep(0.02)
    consumers = [("products.v1:inventory", str(p)) for p in range(3)] + [("relay", "")]
    for consumer, partition in consumers:
        for name in ("lag_events", "lag_seconds", "parked_events"):
            assert samples[(f"bicameral_consumer_{name}", consumer, partition)] == 0
        assert samples[("bicameral_consumer_position", consumer, partition)] == 5
    assert "bicameral_ready 1.0" in response.text


async def test_a_worker_processs_metrics_need_an_admin_and_its_health_is_public(
    projector_node: Node, tmp_path: Path
) -> None:
    app = create_operations_app(projector_node, manage_node=False)
    assert (await scrape(app, {})).status_code == 401
    assert (await scrape(app, admin(tmp_path, roles=("customer",)))).status_code == 403
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://w") as client:
        health = await client.get("/health")
        assert (health.status_code, health.json()) == (200, {"status": "ok"})
        assert (await client.get("/inventory/queries/ListProducts")).status_code == 404


async def test_a_worker_process_answers_readiness_as_an_api_process_does(
    projector_node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_operations_app(projector_node, manage_node=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://w") as client:
        ready = await client.get("/health/ready")
        assert (ready.status_code, ready.json()) == (200, {"status": "ready"})

        async def unready(timeout: float = 1.0) -> dict[str, str]:
            return {"inventory.reads": "no answer within 1s"}

        monkeypatch.setattr(projector_node, "unready", unready)
        ready = await client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.headers["content-type"] == "application/problem+json"
        assert ready.json()["down"] == {"inventory.reads": "no answer within 1s"}
