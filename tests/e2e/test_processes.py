"""End to end: every role of every service in its own OS process, nginx in front, crashes.

For each service: two command-api and two query-api processes behind nginx (deploy/nginx.conf),
two projector processes sharing its projections, a relay, and a saga process when it reacts
to events. Commands go through nginx while a projector and the relay of every service are
SIGKILLed and restarted. Afterwards every read model must equal a fresh fold of the event log,
every stream's events must have been folded once each and in order, no effect may have been
applied twice, and the partitions must be spread over the live projectors.

Runs on the embedded backends (SQLite files shared by the processes, the SQLite transport),
and on PostgreSQL, Redis and NATS JetStream when their adapters are installed.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import random
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
from bicameral.feeds import LogFeed
from bicameral.readstore.memory import MemoryReadStore
from bicameral.runtime.apps import load_services
from bicameral.runtime.node import Node
from bicameral.runtime.settings import Settings
from bicameral.runtime.status import command_side_status, projection_status
from tests.e2e.cluster import ROOT, Cluster, free_port, nginx_binary
from tests.e2e.probe_app import PROBE

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

APP = "tests.e2e.probe_app:services"
PARTITIONS = 4
LEASE_TTL = 2.0
SERVER_ADAPTERS = (
    "bicameral.eventstore.postgres",
    "bicameral.readstore.redis",
    "bicameral.transport.nats",
)


@dataclass
class Layout:
    """Where one run keeps its data: settings for the processes, and how to clean up."""

    name: str
    toml: str
    cleanup: Callable[[], None] = lambda: None


def embedded_layout(home: Path) -> Layout:
    return Layout(
        "embedded",
        f'data_dir = "{home / "data"}"\n',
    )


def servers_layout(home: Path) -> Layout:
    from bicameral.testing.servers import require_server

    for name in ("postgresql", "redis", "nats"):
        require_server(name)
    missing = [m for m in SERVER_ADAPTERS if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"the server adapters are not installed yet: {', '.join(missing)}")
    run = uuid.uuid4().hex[:10]
    return Layout(
        "servers",
        f'transport_url = "nats://127.0.0.1:4222?prefix=e2e{run}"\n'
        "[defaults]\n"
        f'events_url = "postgresql://postgres@127.0.0.1:5432/bicameral_e2e_{run}_{{service}}"\n'
        f'reads_url = "redis://127.0.0.1:6379/0?prefix=e2e_{run}_{{service}}"\n',
    )


@pytest.fixture(params=["embedded", "servers"])
def layout(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Layout]:
    made = embedded_layout(tmp_path) if request.param == "embedded" else servers_layout(tmp_path)
    yield made
    made.cleanup()


@pytest.fixture
def settings(layout: Layout, tmp_path: Path) -> Settings:
    config = tmp_path / "bicameral.toml"
    config.write_text(
        f'app = "{APP}"\npartitions = {PARTITIONS}\nlease_ttl = {LEASE_TTL}\n' + layout.toml
    )
    return Settings.load(config=config, environ={})


@pytest.fixture
def cluster(settings: Settings, tmp_path: Path) -> Iterator[Cluster]:
    """Every role of every service as its own process, and nginx in front; killed at the end."""
    if nginx_binary() is None:
        message = "nginx is not installed; install it with: apt-get install nginx-light"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BICAMERAL_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    cluster = Cluster(tmp_path, tmp_path / "bicameral.toml", env)
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
                cluster.serve(f"{name}-projector-{copy}", name, "projector")
            cluster.serve(f"{name}-relay", name, "relay")
            if service.reactions:
                cluster.serve(f"{name}-saga", name, "saga")
        cluster.nginx(upstreams)
        cluster.wait_healthy(apis)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
async def client(cluster: Cluster) -> AsyncIterator[httpx.AsyncClient]:
    """The one HTTP client of the test, talking to nginx (add credentials here)."""
    base = f"http://127.0.0.1:{cluster.procs['nginx'].port}"
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
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
    node = Node(settings, load_services(APP), roles=())
    for backend in node.factory.started():
        await backend.start()
    yield node
    await node.stop()


@dataclass
class Load:
    """Commands sent through nginx, and what their successes should add up to."""

    http: httpx.AsyncClient
    sent: int = 0
    token: dict[str, str] = field(default_factory=dict)

    async def command(self, service: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """Sends one command until it is applied (same Idempotency-Key on every try)."""
        key = str(uuid.uuid4())
        for _ in range(20):
            try:
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
            self.token[service] = response.headers["X-Consistency-Token"]
            result: dict[str, Any] = response.json()
            return result
        raise AssertionError(f"{service} {name} {body} was never applied")


async def drive_inventory(load: Load, during: Callable[[], Awaitable[None]]) -> None:
    """Registers products and receives stock; checks each product's stock through nginx."""
    rng = random.Random(7)
    skus = [f"e2e-{i}" for i in range(20)]
    for sku in skus:
        await load.command(
            "inventory", "RegisterProduct", {"sku": sku, "name": sku, "price_cents": 100}
        )
    on_hand = Counter[str]()
    receipts = [(rng.choice(skus), rng.randint(1, 5)) for _ in range(360)]
    gate = asyncio.Semaphore(8)

    async def receive(sku: str, quantity: int) -> None:
        async with gate:
            await load.command("inventory", "ReceiveStock", {"sku": sku, "quantity": quantity})
            on_hand[sku] += quantity

    third = len(receipts) // 3
    await asyncio.gather(*(receive(*r) for r in receipts[:third]))
    await asyncio.gather(during(), *(receive(*r) for r in receipts[third:]))

    response = await load.http.get(
        "/inventory/queries/ListProducts",
        headers={"X-Consistency-Token": load.token["inventory"], "X-Consistency-Timeout": "30"},
    )
    assert response.status_code == 200, response.text
    found = {item["sku"]: item["on_hand"] for item in response.json()["items"]}
    assert found == {sku: on_hand[sku] for sku in skus}


DRIVERS = {"inventory": drive_inventory}


async def caught_up(node: Node) -> bool:
    """Returns True when every projection, partition, relay and reaction runner is at its head."""
    rows = await projection_status(node) + await command_side_status(node)
    return all(row.lag == 0 for row in rows)


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
    services = list(node.runtimes)
    missing = [name for name in services if name not in DRIVERS]
    assert not missing, f"no load driver for {missing}: add one to DRIVERS"
    await wait_for(lambda: partitions_spread(node, cluster), "sharing the partitions", cluster)
    load = Load(client)
    crashed = asyncio.Event()

    async def crash() -> None:
        """Kills a projector and the relay of every service; restarts them while load goes on."""
        if crashed.is_set():
            return
        crashed.set()
        for name in services:
            cluster.kill(f"{name}-projector-1")
            cluster.kill(f"{name}-relay")
        sent = load.sent
        for _ in range(30):
            if load.sent >= sent + 60:
                break
            await asyncio.sleep(0.1)
        for name in services:
            cluster.restart(f"{name}-projector-1")
            cluster.restart(f"{name}-relay")

    await asyncio.gather(*(DRIVERS[name](load, crash) for name in services))
    assert crashed.is_set()

    await wait_for(lambda: caught_up(node), "catching up", cluster)
    await assert_read_models_are_the_fold_of_the_log(node)
    await assert_each_stream_folded_once_in_order(node)
    await assert_no_effect_applied_twice(node)
    await wait_for(lambda: partitions_spread(node, cluster), "rebalancing after restart", cluster)

    status = cluster.cli("status")
    for name in services:
        assert f"{name:<10} relay" in status
    assert f"#p{PARTITIONS - 1}" in status
    assert not cluster.dead(), cluster.logs()
