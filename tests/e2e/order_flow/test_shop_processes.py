"""Every role of every shop service in its own process; the saga processes SIGKILLed mid-flow.

Per service: a command-api, a query-api, a projector, a relay and two saga processes (of which
one holds the reactions' leases and the other stands by). The services share nothing but the
transport. Mid-flow the active saga process of every service is SIGKILLed and its standby must
take over; later every saga process is killed at once and both restarted. Afterwards every
order is final, no step took effect twice, the invariants hold and every read model equals
the fold of its log.

Runs on the embedded defaults (SQLite files, the SQLite transport) and on the servers: a
PostgreSQL database per service for its log, read models in Redis (payments' in PostgreSQL,
to cover both read stores), NATS JetStream between the services.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bicameral.runtime.node import Node
from bicameral.runtime.settings import Settings
from tests.e2e.cluster import Cluster, free_port
from tests.e2e.conftest import admin_headers, child_env
from tests.e2e.layouts import LAYOUTS, Layout, create_stores, make_layout, observer, write_settings
from tests.e2e.order_flow.api import FINAL, command, customer_of, ok, order, product, query
from tests.e2e.order_flow.folds import check_shop
from tests.e2e.order_flow.processes import Router
from tests.e2e.order_flow.settling import settle

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

APP = "shop.app:services"
SERVICES = ("inventory", "orders", "payments")
LEASE_TTL = 2.0
"""Seconds before a killed saga process's leases pass to its standby."""


@pytest.fixture(params=LAYOUTS)
def layout(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Layout]:
    made = make_layout(request.param, tmp_path, postgres_reads=("payments",))
    yield made
    made.cleanup()


@pytest.fixture
def settings(layout: Layout, tmp_path: Path) -> Settings:
    return write_settings(tmp_path / "bicameral.toml", layout, APP, lease_ttl=LEASE_TTL)


@pytest.fixture
def cluster(settings: Settings, tmp_path: Path) -> Iterator[Cluster]:
    """Every role of every service as its own process (two of the saga); killed at the end."""
    cluster = Cluster(tmp_path, tmp_path / "bicameral.toml", child_env())
    # The signing key and the stores are made here once, not by processes racing to make them.
    admin_headers(settings.data_dir)
    asyncio.run(create_stores(settings))
    try:
        for name in SERVICES:
            for role in ("command-api", "query-api"):
                cluster.serve(f"{name}-{role}", name, role, free_port())
            for role in ("projector", "relay", "saga-1", "saga-2"):
                cluster.serve(f"{name}-{role}", name, role.split("-")[0])
        cluster.wait_healthy([n for n in cluster.procs if n.endswith("-api")])
        yield cluster
    finally:
        cluster.stop()
        print(cluster.logs())  # shown by pytest when the test failed


@pytest.fixture
async def client(cluster: Cluster, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An admin's HTTP client, each request routed to the process serving its path."""
    ports = {
        f"{name}/{kind}": cluster.procs[f"{name}-{role}"].port or 0
        for name in SERVICES
        for role, kind in (("command-api", "commands"), ("query-api", "queries"))
    }
    async with httpx.AsyncClient(
        transport=Router(ports),
        base_url="http://shop",
        headers=admin_headers(settings.data_dir),
        timeout=30,
    ) as http:
        yield http


@pytest.fixture
async def node(settings: Settings, cluster: Cluster) -> AsyncIterator[Node]:
    """A Node of the shop running no role: the test's view of the logs, leases and checkpoints."""
    running = await observer(settings)
    yield running
    await running.stop()


async def saga_owners(node: Node, cluster: Cluster, service: str) -> dict[str, str]:
    """Returns which saga process (by name) holds each of ``service``'s reaction leases."""
    by_pid = {
        proc.pid: name
        for name, proc in cluster.procs.items()
        if name.startswith(f"{service}-saga") and proc.alive()
    }
    leases = await node.runtime(service).reads.leases(f"reactions/{service}/")
    return {lease: by_pid.get(int(owner.split(":")[1]), owner) for lease, owner in leases.items()}


async def eventually(check: Any, what: str, cluster: Cluster, down: set[str]) -> Any:
    """Returns the first truthy result of ``check()``, failing if a process exits meanwhile."""
    for _ in range(400):
        found = await check()
        if found:
            return found
        dead = [name for name in cluster.dead() if name not in down]
        assert not dead, f"{dead} exited:\n{cluster.logs()}"
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what} never happened")


async def test_the_order_flow_survives_its_saga_processes_being_killed(
    cluster: Cluster, client: httpx.AsyncClient, node: Node
) -> None:
    http = client
    down: set[str] = set()  # killed on purpose, not restarted yet
    await product(http, "bolt", price=300, stock=12)
    await product(http, "nut", price=100, stock=6)
    for n in range(10):
        await ok(http, "payments", "DepositFunds", customer_id=f"c{n}", amount_cents=400 * n + 100)
    order_ids = [f"c{n}-{k}" for n in range(10) for k in range(3)]
    lines = {o: {"bolt": 2} if i % 2 else {"nut": 1, "bolt": 1} for i, o in enumerate(order_ids)}

    async def place(orders: list[str]) -> None:
        # the coroutines are made here, when awaited: none is left unawaited if the test fails
        await asyncio.gather(*(order(http, o, customer_of(o), **lines[o]) for o in orders))

    async def final(orders: list[str]) -> list[dict[str, Any]] | None:
        got: list[dict[str, Any]] = []
        for o in orders:
            found = await query(http, "orders", "GetOrder", order_id=o, customer_id=customer_of(o))
            if found.status_code == 404:  # placed, not projected yet: read models lag
                return None
            assert found.status_code == 200, found.text
            got.append(found.json())
        return got if {doc["status"] for doc in got} <= FINAL else None

    # Mid-flow, the saga process holding each service's first reaction lease dies.
    await place(order_ids[:10])
    standby: dict[str, str] = {}
    for name in SERVICES:
        owners = await eventually(
            lambda name=name: saga_owners(node, cluster, name), "a saga lease", cluster, down
        )
        active = owners[min(owners)]
        cluster.kill(active)
        down.add(active)
        standby[name] = next(n for n in (f"{name}-saga-1", f"{name}-saga-2") if n != active)
    await place(order_ids[10:20])

    # The standbys take every lease over and carry the flow on alone.
    await eventually(lambda: final(order_ids[:20]), "finishing with the standbys", cluster, down)
    for name in SERVICES:

        async def taken_over(name: str = name) -> bool:
            owners = await saga_owners(node, cluster, name)
            reactions = {r.source for r in node.runtime(name).service.reactions}
            return len(owners) == len(reactions) and set(owners.values()) == {standby[name]}

        await eventually(taken_over, f"{standby[name]} taking over", cluster, down)

    # Then every saga process dies at once, orders keep coming, and both copies restart.
    for name in SERVICES:
        cluster.kill(standby[name])
        down.add(standby[name])
    await place(order_ids[20:])
    for name in sorted(down):
        cluster.restart(name)
    down.clear()

    got = await eventually(lambda: final(order_ids), "every order ending", cluster, down)
    confirmed = [doc["order_id"] for doc in got if doc["status"] == "CONFIRMED"]
    assert len(confirmed) >= 2
    for order_id in confirmed[::2]:
        await ok(
            http, "orders", "CancelOrder", order_id=order_id, customer_id=customer_of(order_id)
        )
    refused = await command(
        http, "orders", "CancelOrder", order_id=confirmed[0], customer_id=customer_of(confirmed[0])
    )
    assert refused.status_code == 409
    await settle(node)
    outcomes = await check_shop(http, node, order_ids)
    assert {("CONFIRMED", None), ("CANCELLED", None)} <= outcomes
    assert any(status == "REJECTED" for status, _ in outcomes)
    assert not cluster.dead(), cluster.logs()
