"""End to end: every role of every service in its own OS process, nginx in front, crashes.

For each service: two command-api and two query-api processes behind nginx (deploy/nginx.conf),
two projector processes sharing its projections, a relay, and a saga process when it reacts
to events. Commands go through nginx while a projector and the relay of every service are
SIGKILLed and restarted. Afterwards every read model must equal a fresh fold of the event log,
every stream's events must have been folded once each and in order, no effect may have been
applied twice, and the partitions must be spread over the live projectors.

Runs on the embedded backends (SQLite files shared by the processes, the SQLite transport),
and on PostgreSQL, Redis and NATS JetStream (tests/e2e/layouts.py; in CI an unreachable
server fails the run).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import random
import re
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from bicameral import Projector
from bicameral.readstore.memory import MemoryReadStore
from bicameral.runtime.apps import load_services
from bicameral.runtime.node import Node
from bicameral.runtime.settings import Settings
from bicameral.runtime.status import command_side_status, projection_status
from bicameral.workers.feeds import LogFeed
from tests.e2e.cluster import ROOT, Cluster, free_port, nginx_binary, prometheus_binary
from tests.e2e.layouts import (
    Layout,
    create_stores,
    observer,
    write_settings,
)
from tests.e2e.probe_app import PROBE

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

APP = "tests.e2e.probe_app:services"
NO_PROMETHEUS = "prometheus is not installed; install it with: apt-get install prometheus"
PARTITIONS = 4
LEASE_TTL = 2.0


@pytest.fixture
def settings(layout: Layout, tmp_path: Path) -> Settings:
    return write_settings(
        tmp_path / "bicameral.toml", layout, APP, partitions=PARTITIONS, lease_ttl=LEASE_TTL
    )


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture
def cluster(settings: Settings, tmp_path: Path) -> Iterator[Cluster]:
    """Every role of every service as its own process, nginx in front, and Prometheus
    scraping every process (when installed: required in CI); killed at the end."""
    if nginx_binary() is None:
        message = "nginx is not installed; install it with: apt-get install nginx-light"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    if prometheus_binary() is None and in_ci():
        pytest.fail(NO_PROMETHEUS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BICAMERAL_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT / "shop" / "src"), str(ROOT)])
    cluster = Cluster(tmp_path, tmp_path / "bicameral.toml", env)
    # The signing key and the stores are made here once, not by processes racing to make them.
    credentials(settings)
    asyncio.run(create_stores(settings))
    try:
        apis: list[str] = []
        upstreams: dict[str, list[int]] = {}
        for service in load_services(APP):
            name = service.name
            for role, kind in (("command-api", "commands"), ("query-api", "queries")):
                for copy in (1, 2):
                    proc = cluster.serve(f"{name}-{role}-{copy}", name, role, free_port())
                    apis.append(proc.name)
                    upstreams.setdefault(f"{name}_{kind}", []).append(proc.port or 0)
            for copy in (1, 2):
                cluster.serve(f"{name}-projector-{copy}", name, "projector", free_port())
            cluster.serve(f"{name}-relay", name, "relay", free_port())
            if service.reactions:
                cluster.serve(f"{name}-reactions", name, "reactions", free_port())
        cluster.nginx(upstreams)
        if prometheus_binary() is not None:
            token = credentials(settings)["Authorization"].removeprefix("Bearer ")
            cluster.prometheus(token)
        cluster.wait_healthy([name for name, proc in cluster.procs.items() if proc.labels])
        yield cluster
    finally:
        cluster.stop()
        print(cluster.logs())  # shown by pytest when the test failed


def credentials(settings: Settings) -> dict[str, str]:
    """Returns the headers of an admin's bearer token, once bicameral has access control.

    The token is signed with the embedded key of the run's data dir, which every process
    shares; the cluster fixture makes the key before starting them.
    """
    if importlib.util.find_spec("bicameral.security.tokens") is None:
        return {}
    from bicameral.runtime.auth import embedded_key
    from bicameral.security import tokens

    key = embedded_key(settings)
    token = tokens.issue_token(key, subject="e2e-admin", roles=("admin",))
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def client(cluster: Cluster, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The one HTTP client of the test, talking to nginx with the test's credentials."""
    base = f"http://127.0.0.1:{cluster.procs['nginx'].port}"
    headers = credentials(settings)
    async with httpx.AsyncClient(base_url=base, timeout=30, headers=headers) as http:
        for _ in range(100):
            try:
                if (await http.get("/health")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
        yield http


@pytest.fixture
async def node(settings: Settings, cluster: Cluster) -> AsyncIterator[Node]:
    """A Node of the same services running no role: the test's view of the backends."""
    node = await observer(settings)
    yield node
    await node.stop()


@dataclass
class Load:
    """Commands and queries sent through nginx."""

    http: httpx.AsyncClient
    alive: Callable[[], None] = lambda: None
    sent: int = 0
    gate: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(8))

    async def command(self, service: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """Sends one command until it is applied (same Idempotency-Key on every try)."""
        key = str(uuid.uuid4())
        for _ in range(20):
            self.alive()
            try:
                async with self.gate:
                    response = await self.http.post(
                        f"/{service}/commands/{name}", json=body, headers={"Idempotency-Key": key}
                    )
            except httpx.TransportError:
                await asyncio.sleep(0.2)
                continue
            if response.status_code in (409, 502, 503, 504):
                await asyncio.sleep(0.05)
                continue
            assert response.status_code == 200, response.text
            self.sent += 1
            result: dict[str, Any] = response.json()
            return result
        raise AssertionError(f"{service} {name} {body} was never applied")

    async def ask(self, service: str, name: str, token: str = "", **params: Any) -> Any:
        """Returns the answer to one query (once the read models passed ``token``, if given)."""
        headers = {"X-Consistency-Token": token, "X-Consistency-Timeout": "30"} if token else {}
        async with self.gate:
            response = await self.http.get(
                f"/{service}/queries/{name}", params=params, headers=headers
            )
        assert response.status_code == 200, response.text
        return response.json()

    async def during(self, commands: list[Awaitable[Any]], crash: Crash) -> None:
        """Sends ``commands`` at once, crashing processes a third of the way through."""
        third = len(commands) // 3
        await asyncio.gather(*commands[:third])
        await asyncio.gather(crash(), *commands[third:])


Crash = Callable[[], Awaitable[None]]


class InventoryFlow:
    """Products registered, then stock received at many products at once."""

    needs = frozenset({"inventory"})

    def __init__(self) -> None:
        self.skus = [f"e2e-{uuid.uuid4().hex[:6]}-{i}" for i in range(20)]
        self.on_hand = Counter[str]()
        self.token = ""

    async def drive(self, load: Load, crash: Crash) -> None:
        rng = random.Random(7)
        for sku in self.skus:
            await load.command(
                "inventory", "RegisterProduct", {"sku": sku, "name": sku, "price_cents": 100}
            )

        async def receive(sku: str, quantity: int) -> None:
            body = {"sku": sku, "quantity": quantity}
            self.token = (await load.command("inventory", "ReceiveStock", body))[
                "consistency_token"
            ]
            self.on_hand[sku] += quantity

        receipts = [(rng.choice(self.skus), rng.randint(1, 5)) for _ in range(300)]
        await load.during([receive(*r) for r in receipts], crash)

    async def check(self, load: Load) -> None:
        """Each product's stock is the sum of the receipts the client saw applied."""
        items = (await load.ask("inventory", "ListProducts", self.token))["items"]
        found = {item["sku"]: item["on_hand"] for item in items if item["sku"] in self.skus}
        assert found == {sku: self.on_hand[sku] for sku in self.skus}


class OrderFlow:
    """Customers order scarce products with limited money; some confirmed orders are cancelled.

    The order saga crosses all three services (orders -> inventory -> orders -> payments ->
    orders -> inventory), each step carried by a relay and a saga process.
    """

    needs = frozenset({"inventory", "orders", "payments"})
    final = frozenset({"CONFIRMED", "REJECTED", "CANCELLED"})

    def __init__(self) -> None:
        run = uuid.uuid4().hex[:6]
        rng = random.Random(11)
        self.stock = {f"o{run}-p{i}": (rng.randrange(100, 900, 50), 8) for i in range(6)}
        self.deposits = {f"o{run}-c{i}": rng.choice([800, 2500, 6000]) for i in range(8)}
        skus = [*self.stock, f"o{run}-unknown"]
        self.orders = {
            f"o{run}-o{n}": (
                rng.choice(list(self.deposits)),
                [
                    {"sku": sku, "quantity": rng.randint(1, 3)}
                    for sku in rng.sample(skus, rng.randint(1, 2))
                ],
            )
            for n in range(60)
        }
        self.cancelled: set[str] = set()

    async def statuses(self, load: Load) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for customer in self.deposits:
            answer = await load.ask("orders", "ListCustomerOrders", customer_id=customer)
            found.update(
                {o["order_id"]: o for o in answer["items"] if o["order_id"] in self.orders}
            )
        return found

    async def until_final(self, load: Load) -> dict[str, dict[str, Any]]:
        for _ in range(600):
            load.alive()
            orders = await self.statuses(load)
            if len(orders) == len(self.orders) and all(
                o["status"] in self.final for o in orders.values()
            ):
                return orders
            await asyncio.sleep(0.1)
        raise AssertionError("the orders never all reached a final status")

    async def drive(self, load: Load, crash: Crash) -> None:
        for sku, (price, quantity) in self.stock.items():
            await load.command(
                "inventory", "RegisterProduct", {"sku": sku, "name": sku, "price_cents": price}
            )
            await load.command("inventory", "ReceiveStock", {"sku": sku, "quantity": quantity})
        for customer, amount in self.deposits.items():
            await load.command(
                "payments", "DepositFunds", {"customer_id": customer, "amount_cents": amount}
            )
        placing = [
            load.command("orders", "PlaceOrder", {"order_id": o, "customer_id": c, "lines": lines})
            for o, (c, lines) in self.orders.items()
        ]
        await load.during(placing, crash)
        orders = await self.until_final(load)
        confirmed = sorted(o for o, v in orders.items() if v["status"] == "CONFIRMED")
        self.cancelled = set(confirmed[::3])
        for order in sorted(self.cancelled):
            customer = self.orders[order][0]
            await load.command(
                "orders", "CancelOrder", {"order_id": order, "customer_id": customer}
            )

    async def check(self, load: Load) -> None:
        """Money and stock add up to the orders' outcomes; every order is final."""
        orders = await self.until_final(load)
        assert {o for o, v in orders.items() if v["status"] == "CANCELLED"} == self.cancelled
        confirmed = [v for v in orders.values() if v["status"] == "CONFIRMED"]
        assert confirmed, "no order was confirmed: the test exercised nothing"
        assert any(v["status"] == "REJECTED" for v in orders.values())
        for customer, deposit in self.deposits.items():
            spent = sum(v["total_cents"] for v in confirmed if v["customer_id"] == customer)
            balance = await load.ask("payments", "GetBalance", customer_id=customer)
            assert balance["balance_cents"] == deposit - spent, customer
        for sku, (_, received) in self.stock.items():
            sold = sum(
                line["quantity"] for v in confirmed for line in v["lines"] if line["sku"] == sku
            )
            product = await load.ask("inventory", "GetProduct", sku=sku)
            assert (product["on_hand"], product["reserved"]) == (received - sold, 0), sku


FLOWS = [InventoryFlow, OrderFlow]


class Follower:
    """A live subscription to a query through nginx, keeping the latest result it was sent."""

    def __init__(self, client: httpx.AsyncClient, path: str) -> None:
        self.client = client
        self.path = path
        self.latest: Any = None
        self.results = 0

    async def run(self) -> None:
        async with self.client.stream("GET", self.path) as response:
            assert response.status_code == 200, await response.aread()
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    self.latest = orjson.loads(line.removeprefix("data: "))
                    self.results += 1

    async def caught_up(self) -> bool:
        """Returns True once the latest result is what the query answers now."""
        query = await self.client.get(self.path.replace("/subscriptions/", "/queries/"))
        return self.results > 1 and self.latest == query.json()


async def settled(node: Node) -> bool:
    """Returns True when every projection, partition, relay and reaction runner is at its
    source's head, twice in a row with no head moving in between."""
    seen = []
    for _ in range(2):
        rows = await projection_status(node) + await command_side_status(node)
        if any(row.lag for row in rows):
            return False
        seen.append([(row.name, row.head) for row in rows])
    return seen[0] == seen[1]


async def wait_for(check: Callable[[], Awaitable[bool]], what: str, cluster: Cluster) -> None:
    for _ in range(600):
        if await check():
            return
        assert not cluster.dead(), f"{cluster.dead()} exited:\n{cluster.logs()}"
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what} never happened:\n{cluster.logs()}")


async def assert_read_models_are_the_fold_of_the_log(node: Node) -> None:
    for rt in node.runtimes.values():
        fresh = MemoryReadStore()
        for projection in rt.service.projections:
            for source in projection.sources(rt.name):
                feed = LogFeed(source, node.runtime(source).events)
                await Projector(projection, feed, fresh).catch_up()
            for collection in projection.collections:
                table = projection.table(collection)
                assert await rt.reads.all(table) == await fresh.all(table), table


async def assert_each_stream_folded_once_in_order(node: Node) -> None:
    for rt in node.runtimes.values():
        streams: dict[str, int] = {}
        for env in await rt.events.read_all(0, 1_000_000):
            assert env.stream_version == streams.get(env.subject, 0) + 1, env
            streams[env.subject] = env.stream_version
        probe = next(p for p in rt.service.projections if p.name == PROBE)
        folded = dict(await rt.reads.all(probe.table("streams")))
        assert {s: d["versions"] for s, d in folded.items()} == {
            s: list(range(1, n + 1)) for s, n in streams.items()
        }


async def assert_no_effect_applied_twice(node: Node) -> None:
    """No service's log holds the same change twice for the same cause."""
    for rt in node.runtimes.values():
        effects = Counter(
            (env.metadata.get("causation_id"), env.type, env.subject, orjson.dumps(env.data))
            for env in await rt.events.read_all(0, 1_000_000)
        )
        assert [e for e, n in effects.items() if n > 1] == []


async def partitions_spread(node: Node, cluster: Cluster) -> bool:
    """Returns True when every partition is owned by a live projector and each owns some."""
    services = list(node.runtimes)
    owners: dict[str, set[int]] = {name: set() for name in services}
    for row in await projection_status(node):
        if "#p" in row.name:
            if not row.owner:
                return False
            owners[row.service].add(int(row.owner.split(":")[1]))
    live = {name: {cluster.procs[f"{name}-projector-{i}"].pid for i in (1, 2)} for name in services}
    return owners == live


async def test_every_role_in_its_own_process_survives_killed_projectors_and_relays(
    cluster: Cluster, client: httpx.AsyncClient, node: Node
) -> None:
    services = set(node.runtimes)
    flows = [flow() for flow in FLOWS if flow.needs <= services]
    untested = services - {name for flow in flows for name in flow.needs}
    assert not untested, f"no flow drives {sorted(untested)}: add one to FLOWS"
    await wait_for(lambda: partitions_spread(node, cluster), "sharing the partitions", cluster)

    down: set[str] = set()  # killed on purpose, not restarted yet

    def alive() -> None:
        dead = [name for name in cluster.dead() if name not in down]
        assert not dead, f"{dead} exited:\n{cluster.logs()}"

    crashed = asyncio.Event()
    load = Load(client, alive)
    # a query-api process hears the projector processes' commits through the read store
    follower = Follower(client, "/inventory/subscriptions/ListProducts")
    following = asyncio.create_task(follower.run())

    async def crash() -> None:
        """Kills a projector and the relay of every service; restarts them while load goes on."""
        if crashed.is_set():
            return
        crashed.set()
        down.update(f"{name}-{role}" for name in services for role in ("projector-1", "relay"))
        for name in sorted(down):
            cluster.kill(name)
        sent = load.sent
        for _ in range(30):
            if load.sent >= sent + 60:
                break
            await asyncio.sleep(0.1)
        for name in sorted(down):
            cluster.restart(name)
        down.clear()

    await asyncio.gather(*(flow.drive(load, crash) for flow in flows))
    assert crashed.is_set()

    await wait_for(lambda: settled(node), "settling", cluster)
    await wait_for(follower.caught_up, "the subscription's latest result", cluster)
    following.cancel()
    for flow in flows:
        await flow.check(load)
    await assert_read_models_are_the_fold_of_the_log(node)
    await assert_each_stream_folded_once_in_order(node)
    await assert_no_effect_applied_twice(node)
    await wait_for(lambda: partitions_spread(node, cluster), "rebalancing after restart", cluster)

    await wait_for(lambda: prometheus_sees_every_consumer(cluster, node), "scrapes", cluster)

    for name in [n for n in cluster.procs if "-api-" in n or n in ("nginx", "prometheus")]:
        cluster.kill(name)  # frees their database connections; the rest keep running
    status = cluster.cli("status", "--partitions")
    for name in services:
        assert re.search(rf"{name:<10} relay .* \S+:{cluster.procs[f'{name}-relay'].pid}:", status)
    assert f"#p{PARTITIONS - 1}" in status
    workers = ("projector", "relay", "reactions")
    dead = [n for n in cluster.dead() if cluster.procs[n].labels.get("role") in workers]
    assert not dead, cluster.logs()
    if "prometheus" not in cluster.procs:
        pytest.skip(f"all checked but the scrapes by Prometheus: {NO_PROMETHEUS}")


def consumers(node: Node) -> set[tuple[str, str, str]]:
    """Returns (service, consumer, partition) of every consumer of the node's services."""
    found = set()
    for rt in node.runtimes.values():
        for base, lane in rt.projector_group().lanes.items():
            found |= {(rt.name, base, str(slot.index)) for slot in lane}
        found.add((rt.name, "relay", ""))
        found |= {(rt.name, f"reactions:{r.source}", "") for r in rt.service.reactions}
    return found


async def prometheus_sees_every_consumer(cluster: Cluster, node: Node) -> bool:
    """Returns True when Prometheus scrapes every process and finds the lag of every consumer
    (in seconds and events), every one caught up; True at once without Prometheus."""
    proc = cluster.procs.get("prometheus")
    if proc is None:
        return True
    base = f"http://127.0.0.1:{proc.port}/api/v1"

    async def query(expr: str) -> list[dict[str, Any]]:
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.get(f"{base}/query", params={"query": expr})
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()["data"]["result"]
        return result

    try:
        up = await query('up{job="bicameral"}')
        lag_seconds = await query("bicameral_consumer_lag_seconds")
        lag_events = await query("bicameral_consumer_lag_events")
    except httpx.HTTPError:
        return False  # Prometheus still starting
    processes = [name for name, p in cluster.procs.items() if p.labels]
    if len(up) != len(processes) or any(r["value"][1] != "1" for r in up):
        return False
    expected = consumers(node)

    def by_consumer(result: list[dict[str, Any]]) -> dict[tuple[str, str, str], float]:
        return {
            (m["service"], m["consumer"], m.get("partition", "")): float(r["value"][1])
            for r in result
            for m in [r["metric"]]
        }

    seconds, events = by_consumer(lag_seconds), by_consumer(lag_events)
    if set(seconds) != expected or set(events) != expected:
        return False
    assert all(value >= 0 for value in seconds.values()), seconds
    return all(value == 0 for value in events.values())
